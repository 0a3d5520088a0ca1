"""hoopd's own SSH host key: what clients pin in their known_hosts.

Guarantees: the key is ed25519, lives in ``<data_dir>/ssh/host_ed25519_key``
(mode 0600, directory 0700), is generated the first time it is needed and read
back unchanged ever after, so clients see the same key across restarts. Two
processes starting at once agree on one key (the file is created exclusively).
"""

from __future__ import annotations

from pathlib import Path

import asyncssh

from hoopd.private_file import publish_once

KEY_FILE = Path("ssh") / "host_ed25519_key"


def host_key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The gateway's host key; raises ``OSError`` or ``asyncssh.KeyImportError``
    when the file exists but cannot be read or is not a key."""
    path = host_key_path(data_dir)
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519", comment="hoopd host key")
    # A reader never sees half a key; if another process published its key first,
    # that one is the host key.
    if not publish_once(path, key.export_private_key()):
        return asyncssh.read_private_key(path)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key
