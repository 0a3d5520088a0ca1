"""Opening the small SQLite stores that gateway processes share (approvals, tokens).

Guarantees of :func:`open_shared_db`: the file is created private (0600) before
SQLite writes anything to it, so its ``-wal`` and ``-shm`` companions are private
too; it runs in WAL mode with ``synchronous=FULL`` (every commit is on disk before
the caller is told, which is what a decision or a revocation needs); the schema is
applied in one transaction; on any failure the connection is closed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

BUSY_TIMEOUT_SECONDS: Final = 5.0
"""How long a write waits for another process's write lock before failing."""


def open_shared_db(path: Path, schema: str, schema_version: int) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and apply ``schema``
    (statements separated by ``;`` at line ends)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # Statement by statement: executescript() would commit the transaction.
        with transaction(db, immediate=True):
            for statement in schema.split(";\n"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={schema_version}")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = False) -> Iterator[None]:
    """One transaction: ``BEGIN IMMEDIATE`` takes the write lock before the first
    read, so what a change reads cannot be changed by another process before it
    commits."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
