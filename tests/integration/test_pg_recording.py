"""The recording, as a user of ``hoopd sessions`` / ``replay`` / ``audit verify`` sees
it: what the session did, in order, with results; that it survives the gateway
being killed; that tampering is detected; and that when the recorder cannot
write, the command is not executed on the target (fail closed)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.gateway import (
    Gateway,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(pg, tmp_path_factory.mktemp("gw-recording")) as gateway:
        yield gateway


def _strings(value: Any) -> Iterator[str]:
    """Every scalar in a JSON structure, as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def _mentions(record: Any, text: str) -> bool:
    return any(text in s for s in _strings(record))


def _replay_until(
    gw: Gateway, session_id: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10.0
    while True:
        records = gw.replay(session_id)
        if done(records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"replay of {session_id} never got there: {records!r}")
        time.sleep(0.1)


def _statement_results(
    records: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each statement record's body paired with the body of the result that follows it."""
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    pending: dict[str, Any] | None = None
    for record in records:
        if record["kind"] == "statement":
            assert pending is None, f"statement without a result before {record!r}"
            pending = record["body"]
        elif record["kind"] == "result":
            assert pending is not None, f"result without a statement: {record!r}"
            pairs.append((pending, record["body"]))
            pending = None
    return pairs


def test_sessions_and_replay_show_what_happened(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("rec")
    script = [
        "select id, email from customers where id <= 3",
        f"insert into audit_marks (marker, note) values ('{marker}', 'first')",
        f"update audit_marks set note = 'second' where marker = '{marker}'",
        f"select * from missing_table_{marker}",
        f"delete from audit_marks where marker = '{marker}'",
    ]
    before = session_ids(gw)
    done = gw.psql("-f", "-", input="".join(s + ";\n" for s in script))
    assert done.returncode == 0  # psql goes on after errors without ON_ERROR_STOP
    assert "does not exist" in done.stderr
    # The target ran them: the row was inserted, updated, then deleted.
    log = pg.statements_logged()
    for sql in script:
        assert sql + ";" in log

    session = wait_for_new_session(gw, before)
    assert _mentions(session, "alice")
    assert _mentions(session, "appdb")
    assert _mentions(session, "127.0.0.1")
    session_id = session_id_of(session)

    records = _replay_until(gw, session_id, lambda rs: rs[-1]["kind"] == "session_end")
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "session_start"
    assert "auth" in kinds and kinds.index("auth") < kinds.index("statement")
    auth = records[kinds.index("auth")]
    assert _mentions(auth, "alice")

    pairs = _statement_results(records)
    assert [s["sql"].rstrip(";") for s, _ in pairs] == script
    assert len(pairs) == 5
    (select, r_select), (insert, r_insert), (update, r_update) = pairs[:3]
    (_bad, r_bad), (delete, r_delete) = pairs[3:]
    assert "select" in select["classification"]["kinds"]
    assert r_select["tag"] == "SELECT 3" and r_select["rows"] == 3
    assert "insert" in insert["classification"]["kinds"]
    assert insert["classification"]["tables_written"] == ["audit_marks"]
    assert r_insert["tag"] == "INSERT 0 1" and r_insert["rows"] == 1
    assert "update" in update["classification"]["kinds"]
    assert r_update["tag"] == "UPDATE 1" and r_update["rows"] == 1
    assert r_bad["error"]["code"] == "42P01"
    assert "tag" not in r_bad
    assert "delete" in delete["classification"]["kinds"]
    assert r_delete["tag"] == "DELETE 1"
    assert gw.audit_verify().returncode == 0


def test_sigkill_keeps_what_was_executed(pg: PgServer, tmp_path: Path) -> None:
    gateway = Gateway(pg, tmp_path / "gw")
    gateway.start()
    try:
        marker = unique_marker("killed")
        conn = gateway.connect()
        conn.execute("insert into audit_marks (marker, note) values (%s, 'before kill')", (marker,))
        assert pg.scalar(f"select count(*) from audit_marks where marker = '{marker}'") == "1"
        gateway.kill()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 1")
        conn.close()
    finally:
        gateway.kill()

    [session] = gateway.sessions()
    session_id = session_id_of(session)
    assert _mentions(session, "unterminated"), session
    records = gateway.replay(session_id)
    statements = [r["body"]["sql"] for r in records if r["kind"] == "statement"]
    assert any(marker in s for s in statements), statements
    assert records[-1]["kind"] != "session_end"
    verified = gateway.audit_verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_tampering_with_the_journal_is_detected(pg: PgServer, tmp_path: Path) -> None:
    marker = unique_marker("tamper")
    with running_gateway(pg, tmp_path / "gw") as gateway:
        before = session_ids(gateway)
        done = gateway.psql("-c", f"insert into audit_marks (marker) values ('{marker}')")
        assert done.returncode == 0, done.stderr
        session_id = session_id_of(wait_for_new_session(gateway, before))
    assert gateway.audit_verify().returncode == 0

    journal = gateway.data_dir / "journal"
    holders = [p for p in journal.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]
    assert len(holders) == 1, f"the statement text should be in one journal file: {holders}"
    data = bytearray(holders[0].read_bytes())
    at = data.index(marker.encode()) + len(marker) - 1
    data[at] ^= 0x01  # one bit of the statement text
    holders[0].write_bytes(bytes(data))

    verified = gateway.audit_verify()
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert session_id in verified.stdout + verified.stderr


def _largest_file(directory: Path) -> int:
    return max((p.stat().st_size for p in directory.rglob("*") if p.is_file()), default=0)


@pytest.mark.slow
def test_recorder_failure_blocks_the_statement(pg: PgServer, tmp_path: Path) -> None:
    """With the journal unable to grow (RLIMIT_FSIZE), the first statement that cannot be
    recorded fails on the client and never reaches the target."""
    # First run: let the gateway create its data directory, then measure it.
    with running_gateway(pg, tmp_path / "gw") as gateway:
        pass
    limit = _largest_file(gateway.data_dir) + 16 * 1024

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    capped = Gateway(pg, tmp_path / "gw", preexec_fn=cap_file_size)
    capped.start()
    try:
        note = "x" * 2000
        executed: list[str] = []
        failed: tuple[str, psycopg.Error] | None = None
        with capped.connect() as conn:
            for i in range(200):
                marker = unique_marker(f"cap{i}")
                try:
                    conn.execute(
                        "insert into audit_marks (marker, note) values (%s, %s)", (marker, note)
                    )
                except psycopg.Error as exc:
                    failed = (marker, exc)
                    break
                executed.append(marker)
    finally:
        capped.stop()

    assert failed is not None, "200 statements recorded despite the file size limit"
    marker, error = failed
    assert error.sqlstate == "58030", f"{error.sqlstate}: {error}"
    assert executed, "the limit left no room even for one statement"
    # The target has every statement that was recorded, and not the one that was not.
    assert pg.scalar(f"select count(*) from audit_marks where marker = '{marker}'") == "0"
    listed = ", ".join(f"'{m}'" for m in executed)
    assert pg.scalar(f"select count(*) from audit_marks where marker in ({listed})") == str(
        len(executed)
    )
