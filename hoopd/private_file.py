"""Writing private files (keys): :func:`write_new_private` creates one, and
:func:`publish_once` publishes one exactly once.

Guarantee: :func:`publish_once` leaves ``path`` either absent or holding a whole
file, mode 0600, written to disk (fsync) before it appears. It never replaces an
existing file: of two processes publishing at once, one wins and the other's data
is dropped, so whatever was published first (and anything it already signed) stays
valid. The draft is written beside ``path`` under a name starting ``.tmp-`` (which
the token key ring skips) and is always removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Final

TEMP_PREFIX: Final = ".tmp-"


def publish_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless a file is there already; whether this call
    published it. Creates the directory (0700) if needed. Raises OSError."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(8)}")
    try:
        write_new_private(draft, data)
        try:
            # link, unlike rename, never replaces a file already there.
            os.link(draft, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):  # never created, or already linked
            os.unlink(draft)


def write_new_private(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), mode 0600, holding ``data`` written to
    disk (fsync) when this returns. Raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
