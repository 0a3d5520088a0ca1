"""hoopd's own SSH host key: what clients pin in their known_hosts.

Guarantees: the key is ed25519, lives in ``<data_dir>/ssh/host_ed25519_key``
(mode 0600, directory 0700), is generated the first time it is needed and read
back unchanged ever after, so clients see the same key across restarts. Two
processes starting at once agree on one key (the file is created exclusively).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncssh

KEY_FILE = Path("ssh") / "host_ed25519_key"


def host_key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The gateway's host key; raises ``OSError`` or ``asyncssh.KeyImportError``
    when the file exists but cannot be read or is not a key."""
    path = host_key_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519", comment="hoopd host key")
    # Written aside, then linked into place: a reader never sees half a key, and
    # link() fails if another process published its key first.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return asyncssh.read_private_key(path)
    finally:
        draft.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key
