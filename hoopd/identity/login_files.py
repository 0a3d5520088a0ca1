"""Where ``hoopd login`` keeps a gateway token: its own token file, a line in a
PostgreSQL password file, or a kubeconfig user entry.

Guarantees: every file is replaced atomically (a new file in the same directory,
created with mode 0600, flushed to disk, then renamed over the old one), so a reader
sees the old content or the new, never a mix, and nobody but the owner can read it
at any moment. A symbolic link given as the file is followed: the file it points to
is replaced and the link stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

PRIVATE_FILE_MODE: Final = 0o600
PRIVATE_DIR_MODE: Final = 0o700
KUBECONFIG_HEADER: Final = "# Written by hoopd login: a kubeconfig user entry to merge."
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})


class LoginFileError(Exception):
    """A file cannot be read or written as asked; the message names it (no token)."""


def default_token_file(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/hoopd/token``, or ``~/.config/hoopd/token`` when that is
    unset or not absolute (the XDG Base Directory rule)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "hoopd" / "token"


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` and a newline to ``path``; its directory is created if needed
    and set to mode 0700 (it is hoopd's own directory of credentials)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        path.parent.chmod(PRIVATE_DIR_MODE)
    except OSError as exc:
        raise LoginFileError(f"cannot create {path.parent}: {exc.strerror}") from exc
    write_private(path, token + "\n")


def write_private(path: Path, text: str) -> None:
    """Replace the content of ``path`` (following a symbolic link) atomically with
    ``text``; the result has mode 0600."""
    target = Path(os.path.realpath(path))
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".new")
    except OSError as exc:
        raise LoginFileError(f"cannot write in {target.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), PRIVATE_FILE_MODE)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise LoginFileError(f"cannot write {target}: {exc.strerror}") from exc
    with contextlib.suppress(OSError):  # the rename itself, durable too
        directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# -- PostgreSQL password file ------------------------------------------------------------


def pgpass_host(listen_host: str) -> str:
    """The host field for a gateway listening on ``listen_host``: ``*`` for a wildcard
    address (clients reach it by whatever name they use), else the address itself."""
    return "*" if listen_host in _WILDCARD_HOSTS else listen_host


def pgpass_escape(field: str) -> str:
    """A field as libpq reads it: ``\\`` and ``:`` preceded by a backslash."""
    return field.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(host: str, port: int, database: str, token: str) -> str:
    """``host:port:database:*:token``, each field escaped (any user name matches:
    the gateway ignores it; the token decides who the caller is)."""
    fields = (host, str(port), database, "*", token)
    return ":".join(pgpass_escape(f) for f in fields)


def updated_pgpass(old: str, host: str, port: int, database: str, token: str) -> str:
    """``old`` with every line for exactly ``host:port:database:*`` removed and the new
    line put first (libpq uses the first line that matches, so a broader line further
    up must not shadow it). Every other line, comments included, is kept as it was."""
    wanted = [host, str(port), database, "*"]
    kept = [line for line in old.splitlines() if _pgpass_fields(line)[:4] != wanted]
    return "\n".join([pgpass_line(host, port, database, token), *kept]) + "\n"


def write_pgpass(path: Path, host: str, port: int, database: str, token: str) -> None:
    """Add or replace the line for ``host:port:database:*`` in the password file."""
    write_private(path, updated_pgpass(read_text(path), host, port, database, token))


def _pgpass_fields(line: str) -> list[str]:
    """The unescaped fields of a line, as libpq splits it; none for a comment."""
    if line.startswith("#"):
        return []
    return list(_split_escaped(line))


def _split_escaped(line: str) -> Iterator[str]:
    field: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            field.append(next(chars, ""))
        elif char == ":":
            yield "".join(field)
            field = []
        else:
            field.append(char)
    yield "".join(field)


# -- kubeconfig --------------------------------------------------------------------------


def kubeconfig_snippet(user: str, token: str) -> str:
    """A kubeconfig holding one user entry named ``user`` with the bearer ``token``."""
    # JSON strings are valid YAML double-quoted scalars.
    return "\n".join(
        [
            KUBECONFIG_HEADER,
            "apiVersion: v1",
            "kind: Config",
            "preferences: {}",
            "users:",
            f"- name: {json.dumps(user)}",
            "  user:",
            f"    token: {json.dumps(token)}",
            "",
        ]
    )


def check_kubeconfig_target(path: Path) -> None:
    """Refuse a file that exists and was not written by ``hoopd login``: replacing a
    whole kubeconfig would lose its clusters, contexts and other users."""
    text = read_text(path)
    if text and not text.startswith(KUBECONFIG_HEADER):
        raise LoginFileError(
            f"{path} exists and was not written by hoopd login; name a new file and"
            " merge it into your kubeconfig"
        )


def write_kubeconfig(path: Path, user: str, token: str) -> None:
    check_kubeconfig_target(path)
    write_private(path, kubeconfig_snippet(user, token))


def read_text(path: Path) -> str:
    """The file's text; empty when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise LoginFileError(f"cannot read {path}: {exc}") from exc
