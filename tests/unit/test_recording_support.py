"""Helpers shared by the recording tests (this module holds no tests itself)."""

from __future__ import annotations

import argparse
import io
import struct
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoopd.recording.cli import register
from hoopd.recording.frames import Record
from hoopd.recording.journal import Journal, SessionRecorder
from hoopd.recording.reader import journal_entries
from hoopd.recording.segments import list_segments

ALICE = {"subject": "alice", "groups": ["dba"], "token_id": "tok-alice", "actor_chain": []}
BOB = {"subject": "bob", "groups": [], "token_id": "tok-bob", "actor_chain": []}


def statement(sql: str, *params: str | bytes | None) -> tuple[str, dict[str, Any]]:
    """A ``statement`` record shaped like SqlStatement.to_record()."""
    body: dict[str, Any] = {
        "sql": sql,
        "origin": "execute" if params else "query",
        "classification": {
            "kinds": ["select"],
            "tables_read": ["public.accounts"],
            "tables_written": [],
            "functions": [],
            "statement_count": 1,
        },
    }
    if params:
        body["params"] = list(params)
    return ("statement", body)


def result(tag: str, rows: int | None = None) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"tag": tag}
    if rows is not None:
        body["rows"] = rows
    return ("result", body)


def start(
    journal: Journal, identity: dict[str, Any] | None = ALICE, **extra: Any
) -> SessionRecorder:
    options: dict[str, Any] = {
        "connection": "appdb",
        "protocol": "postgres",
        "client_addr": "127.0.0.1:50123",
        "identity": identity,
        "attributes": {"application_name": "psql"},
    }
    options.update(extra)
    return journal.start_session(**options)


@dataclass(frozen=True)
class Located:
    """Where a record's frame is: ``path[offset:offset + size]``."""

    record: Record
    path: Path
    offset: int
    size: int


def locate(data_dir: Path) -> list[Located]:
    """Every readable record with its frame's place on disk, in journal order."""
    paths = dict(list_segments(data_dir))
    found = []
    for entry in journal_entries(data_dir):
        assert isinstance(entry, Record), entry
        path = paths[entry.segment]
        with path.open("rb") as file:
            file.seek(entry.offset)
            (length,) = struct.unpack(">I", file.read(4))
        found.append(Located(entry, path, entry.offset, 4 + length))
    return found


def cut(path: Path, start: int, end: int) -> None:
    """Remove bytes ``start:end`` from a file."""
    data = path.read_bytes()
    path.write_bytes(data[:start] + data[end:])


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1, f"{old!r} occurs {data.count(old)} times"
    path.write_bytes(data.replace(old, new))


@dataclass(frozen=True)
class CliResult:
    status: int
    out: str
    err: str


def run_cli(argv: Sequence[str]) -> CliResult:
    """Parse ``argv`` with a parser the recording commands registered on; run it."""
    parser = argparse.ArgumentParser(prog="hoopd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = args.func(args)
    assert isinstance(status, int)
    return CliResult(status, out.getvalue(), err.getvalue())
