"""Properties of the recording commands when the session index was edited.

Whoever can write the data dir can rewrite ``hoopd.sqlite`` as well as the journal:
any cell with any SQLite value, any row, or the whole file. Whatever it holds,
``hoopd sessions``, ``hoopd replay``, ``hoopd audit verify`` and ``hoopd audit
reindex`` work, report the problem or refuse in one line; none fails with a
traceback or prints control characters, and ``reindex --force`` restores what the
journal says.

Run longer with ``HYPOTHESIS_PROFILE=deep`` (see conftest.py).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from hoopd.recording.index import index_path
from hoopd.recording.verify import verify
from tests.property.test_recording_properties import (
    _examples,
    assert_clean,
    assert_lists,
    cli,
    lines,
    strict_json,
)
from tests.unit.test_recording_cli import record_demo
from tests.unit.test_recording_support import CliResult

COLUMNS = (
    "id", "connection", "protocol", "subject", "identity", "client_addr", "attributes",
    "started_at", "first_segment", "ended_at", "end_reason", "statement_count",
    "last_segment", "last_seq", "head_hash",
)  # fmt: skip
JSON_COLUMNS = ("identity", "attributes")


# ---------------------------------------------------------------- the journal


@dataclass(frozen=True)
class Indexed:
    """A data dir written by the real writer (one session ended, one left open by a
    stopped gateway) and what the commands print for it once reindexed."""

    data_dir: Path
    session_ids: tuple[str, str]
    rebuilt: str  # ``hoopd sessions --json`` after ``hoopd audit reindex``


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    data_dir = tmp_path_factory.mktemp("indexed")
    session_ids = trio.run(record_demo, data_dir)
    assert verify(data_dir).ok
    with copy_of(data_dir) as copy:
        assert cli(copy, "audit", "reindex").status == 0
        rebuilt = cli(copy, "sessions", "--json").out
    assert len(lines(rebuilt)) == 2
    return Indexed(data_dir, session_ids, rebuilt)


@contextmanager
def copy_of(data_dir: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / "data"
        shutil.copytree(data_dir, copy)
        yield copy


# ---------------------------------------------------------------- strategies

#: Text a forger may put where the index holds JSON: not JSON, JSON that is not an
#: object, objects whose fields have the wrong types or hold escape sequences, and
#: nesting deep enough to exhaust a recursive decoder or renderer.
JSON_TEXTS = st.sampled_from(
    [
        "",
        "{",
        "null",
        "0",
        '"alice"',
        "[1, 2]",
        "NaN",
        '{"a": NaN, "b": -Infinity}',
        '{"subject": 5, "actor_chain": "abc"}',
        '{"subject": "\\u001b[2J", "actor_chain": ["\\u009b31m", {"x": []}]}',
        '{"subject": null, "actor_chain": [null, 1.5, true]}',
        '{"subject": "a", "actor_chain": ' + "[" * 200 + "]" * 200 + "}",
        '{"subject": "a", "actor_chain": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 100_000 + "]" * 100_000,
    ]
) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
).map(json.dumps)

#: Every kind of value SQLite stores: NULL, 64-bit integers, floats (NaN is stored
#: as NULL), text (control characters included) and blobs.
SQL_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["\x1b[2J", "\x9b31m", "\u202e", "a\x00b", "\u2028"]),
    st.binary(max_size=40),
    JSON_TEXTS,
)


@dataclass(frozen=True)
class Edit:
    """One change to the ``sessions`` table: ``set`` a column of a session's row (or
    of every row), ``delete`` a session's row (or every row), or ``insert`` a row
    (with a session's id, or with its own)."""

    how: str
    row: int | None  # which session (index into the journal's); None: every row
    column: str = ""
    value: Any = None
    values: tuple[Any, ...] = ()

    def apply(self, db: sqlite3.Connection, session_ids: tuple[str, str]) -> None:
        where, args = ("", ()) if self.row is None else (" WHERE id=?", (session_ids[self.row],))
        if self.how == "set":
            # OR IGNORE: with the gateway's schema, a NOT NULL or primary key the
            # value would break leaves the row as it was.
            db.execute(f"UPDATE OR IGNORE sessions SET {self.column}=?{where}", (self.value, *args))
        elif self.how == "delete":
            db.execute(f"DELETE FROM sessions{where}", args)
        else:
            values = self.values if self.row is None else (session_ids[self.row], *self.values[1:])
            marks = ", ".join("?" * len(COLUMNS))
            db.execute(f"INSERT OR IGNORE INTO sessions VALUES ({marks})", values)


@st.composite
def edits(draw: st.DrawFn) -> Edit:
    how = draw(st.sampled_from(["set", "set", "set", "delete", "insert"]))
    row = draw(st.sampled_from([0, 1, None]))
    if how == "set":
        column = draw(st.sampled_from(COLUMNS))
        value = draw(JSON_TEXTS if column in JSON_COLUMNS and draw(st.booleans()) else SQL_VALUES)
        return Edit(how, row, column, value)
    if how == "delete":
        return Edit(how, row)
    # A new row: its id one the journal (and possibly the index) already has, or
    # anything; every other cell anything.
    return Edit(how, row, values=draw(st.tuples(*[SQL_VALUES] * len(COLUMNS))))


def untype(db: sqlite3.Connection) -> None:
    """Recreate the table without column types or constraints, keeping its rows, so
    that any cell can hold any value and ids can repeat."""
    db.executescript(
        f"""
        ALTER TABLE sessions RENAME TO typed;
        CREATE TABLE sessions ({", ".join(COLUMNS)});
        INSERT INTO sessions SELECT {", ".join(COLUMNS)} FROM typed;
        DROP TABLE typed;
        """
    )


def edit_index(
    data_dir: Path, session_ids: tuple[str, str], typed: bool, changes: list[Edit]
) -> None:
    with closing(sqlite3.connect(index_path(data_dir), isolation_level=None)) as db:
        if not typed:
            untype(db)
        for change in changes:
            change.apply(db, session_ids)


def remove_index(data_dir: Path) -> None:
    for path in data_dir.glob(index_path(data_dir).name + "*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def new_database(path: Path, script: str) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(script)


#: What may stand where the index should be: garbage, nothing, a SQLite file without
#: the table or with another table of that name, a directory.
REPLACEMENTS = st.one_of(
    st.binary(max_size=600).map(lambda b: ("bytes", b)),
    st.binary(max_size=600).map(lambda b: ("bytes", b"SQLite format 3\x00" + b)),
    st.just(("bytes", b"")),
    st.just(("sql", "CREATE TABLE other (x);")),
    st.just(("sql", "CREATE TABLE sessions (id TEXT PRIMARY KEY, x);")),
    st.just(("sql", "CREATE TABLE t (id); CREATE VIEW sessions AS SELECT * FROM t;")),
    st.just(("directory", None)),
)


def replace_index(data_dir: Path, kind: str, content: Any) -> None:
    remove_index(data_dir)
    path = index_path(data_dir)
    if kind == "bytes":
        path.write_bytes(content)
    elif kind == "sql":
        new_database(path, content)
    else:
        path.mkdir()


# -------------------------------------------------------------------- checks


def assert_refusal(done: CliResult) -> None:
    """A refusal: exit 1, nothing on stdout, one line on stderr."""
    assert done.status == 1 and done.out == "", done
    assert len(lines(done.err)) == 1 and done.err.startswith("hoopd: "), done
    assert_clean(done.err)


def assert_replays_or_refuses(data_dir: Path, session_id: str) -> None:
    for form in ((), ("--json",)):
        shown = cli(data_dir, "replay", session_id, *form)
        if shown.status != 0:
            assert_refusal(shown)
            assert "no session" in shown.err, shown
            continue
        if form:
            for line in lines(shown.out):
                strict_json(line)
        else:
            assert_clean(shown.out)
        assert_clean(shown.err)


def assert_verifies_or_reports(data_dir: Path) -> None:
    checked = cli(data_dir, "audit", "verify")
    assert checked.status in (0, 1), checked
    assert_clean(checked.out)
    assert checked.err == "", checked
    last = lines(checked.out)[-1]
    assert last.endswith("all chains intact" if checked.status == 0 else "problems found"), last


def assert_reindexes_or_refuses(data_dir: Path, rebuilt: str) -> None:
    """``reindex`` rebuilds or refuses (because verification found problems, or in
    one line); ``reindex --force`` rebuilds unless it refuses in one line, and a
    rebuilt index lists what the journal says."""
    plain = cli(data_dir, "audit", "reindex")
    assert_clean(plain.out)
    assert_clean(plain.err)
    if plain.status != 0 and "problems found" in plain.out:
        assert plain.status == 1 and len(lines(plain.err)) == 1 and "--force" in plain.err, plain
    elif plain.status != 0:
        assert_refusal(plain)
    forced = cli(data_dir, "audit", "reindex", "--force")
    if forced.status != 0:
        assert_refusal(forced)
        return
    assert forced.out == "index rebuilt: 2 sessions\n" and forced.err == "", forced
    assert cli(data_dir, "sessions", "--json").out == rebuilt
    assert cli(data_dir, "audit", "verify").status == 0


def assert_every_command_copes(indexed: Indexed, data_dir: Path) -> None:
    assert_lists(data_dir)
    for session_id in indexed.session_ids:
        assert_replays_or_refuses(data_dir, session_id)
    assert_verifies_or_reports(data_dir)
    assert_reindexes_or_refuses(data_dir, indexed.rebuilt)
    assert_lists(data_dir)


# ---------------------------------------------------------------- properties


@_examples(0.6)
@given(typed=st.booleans(), changes=st.lists(edits(), min_size=1, max_size=4))
@example(typed=True, changes=[Edit("set", 0, "identity", "{")])
@example(typed=True, changes=[Edit("set", None, "attributes", "[1, 2]")])
@example(typed=True, changes=[Edit("set", 0, "identity", '{"subject": 5, "actor_chain": "abc"}')])
@example(typed=True, changes=[Edit("set", 0, "identity", "[" * 100_000 + "]" * 100_000)])
@example(typed=False, changes=[Edit("set", 1, "started_at", "yesterday")])
@example(typed=False, changes=[Edit("set", 0, "ended_at", b"\x00")])
@example(typed=False, changes=[Edit("set", None, "first_segment", 1.5)])
@example(typed=False, changes=[Edit("set", 0, "last_seq", "9")])
@example(typed=False, changes=[Edit("set", 0, "head_hash", "not bytes")])
@example(typed=False, changes=[Edit("set", 0, "connection", None)])
@example(typed=False, changes=[Edit("set", 0, "end_reason", 7)])
@example(typed=False, changes=[Edit("set", 1, "id", None)])
@example(typed=False, changes=[Edit("set", 1, "id", 42)])
@example(typed=True, changes=[Edit("set", 1, "id", "\x1b[2J")])
@example(typed=True, changes=[Edit("set", 1, "client_addr", b"\xff\xfe")])
@example(typed=False, changes=[Edit("insert", 0, values=(None,) * len(COLUMNS))])
def test_whatever_the_index_cells_hold_the_commands_work_or_refuse(
    indexed: Indexed, typed: bool, changes: list[Edit]
) -> None:
    with copy_of(indexed.data_dir) as data_dir:
        edit_index(data_dir, indexed.session_ids, typed, changes)
        assert_every_command_copes(indexed, data_dir)


@_examples(0.3)
@given(REPLACEMENTS)
@example(("bytes", b"this is not a database" * 10))
@example(("bytes", b""))
@example(("sql", "CREATE TABLE other (x);"))
@example(("sql", "CREATE TABLE sessions (id TEXT PRIMARY KEY, x);"))
@example(("sql", "CREATE TABLE t (id); CREATE VIEW sessions AS SELECT * FROM t;"))
@example(("directory", None))
def test_whatever_stands_in_for_the_index_the_commands_work_or_refuse(
    indexed: Indexed, replacement: tuple[str, Any]
) -> None:
    with copy_of(indexed.data_dir) as data_dir:
        replace_index(data_dir, *replacement)
        assert_every_command_copes(indexed, data_dir)


# ------------------------------------------------- rows that once broke commands


@pytest.mark.parametrize(
    ("typed", "row", "column", "value", "reported"),
    [
        # Each of these made a command fail with a traceback (the escape sequence
        # reached the terminal instead): JSONDecodeError, RecursionError, TypeError
        # (four ways), AttributeError, and an unescaped id in the listing.
        (True, 0, "identity", "{", "the index row is unreadable: identity is not JSON"),
        (True, 0, "identity", "[" * 100_000 + "]" * 100_000, "identity is not JSON"),
        (False, 0, "ended_at", b"\x00", "ended_at holds a blob, not a time"),
        (False, 0, "last_seq", "9", "last_seq holds text, not int"),
        (False, 0, "head_hash", "not bytes", "head_hash holds text, not bytes"),
        (False, 0, "connection", None, "connection holds NULL, not str"),
        (False, 1, "id", 42, "the index row with id 42 is unreadable: its id is not printable"),
        (True, 1, "id", "\x1b[2J", "the index row with id '\\x1b[2J' is unreadable"),
    ],
)
def test_a_malformed_index_row_is_reported_and_the_journal_listed_instead(
    indexed: Indexed, typed: bool, row: int, column: str, value: Any, reported: str
) -> None:
    with copy_of(indexed.data_dir) as data_dir:
        edit_index(data_dir, indexed.session_ids, typed, [Edit("set", row, column, value)])
        checked = cli(data_dir, "audit", "verify")
        assert checked.status == 1 and reported in checked.out, checked
        assert lines(checked.out)[0].startswith("BROKEN "), checked
        assert_clean(checked.out)
        assert cli(data_dir, "sessions", "--json").out == indexed.rebuilt
        refused = cli(data_dir, "audit", "reindex")
        assert refused.status == 1 and "--force" in refused.err, refused
        assert_every_command_copes(indexed, data_dir)


def test_a_session_indexed_twice_is_reported_and_neither_row_used(indexed: Indexed) -> None:
    with copy_of(indexed.data_dir) as data_dir:
        ended = indexed.session_ids[0]
        with closing(sqlite3.connect(index_path(data_dir))) as db, db:
            untype(db)
            db.execute("INSERT INTO sessions SELECT * FROM sessions WHERE id=?", (ended,))
            db.execute(
                "UPDATE sessions SET last_seq=0 WHERE rowid=(SELECT max(rowid) FROM sessions)"
            )
        checked = cli(data_dir, "audit", "verify")
        assert checked.status == 1, checked
        assert f"BROKEN session {ended}: corrupt: the index lists this session 2 times" in (
            checked.out
        )
        assert cli(data_dir, "sessions", "--json").out == indexed.rebuilt


@pytest.mark.parametrize(
    "script",
    [None, "CREATE TABLE sessions (id TEXT PRIMARY KEY, x);"],
    ids=["not-a-database", "another-schema"],
)
def test_reindex_refuses_in_one_line_an_index_it_cannot_rewrite(
    indexed: Indexed, script: str | None
) -> None:
    # sqlite3.DatabaseError and OperationalError used to escape as tracebacks.
    with copy_of(indexed.data_dir) as data_dir:
        if script is None:
            replace_index(data_dir, "bytes", b"not a database" * 20)
        else:
            replace_index(data_dir, "sql", script)
        for force in ((), ("--force",)):
            refused = cli(data_dir, "audit", "reindex", *force)
            assert_refusal(refused)
            assert refused.err.startswith(f"hoopd: cannot rebuild the index {index_path(data_dir)}")
        assert cli(data_dir, "sessions", "--json").out == indexed.rebuilt
