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
    assert session["identity"]["subject"] == "alice"
    assert session["identity"]["groups"] == ["dba"]
    assert session["connection"] == "appdb"
    assert session["client_addr"].startswith("127.0.0.1:")
    session_id = session_id_of(session)

    records = _replay_until(gw, session_id, lambda rs: rs[-1]["kind"] == "session_end")
    assert records[0]["kind"] == "session_start"
    assert records[0]["body"]["identity"]["subject"] == "alice"
    # The token itself is never recorded, only an identifier derived from its hash.
    assert gw.token.value not in str(records)
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert session["state"] == "ended"

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
    assert session["state"] == "unterminated", session
    records = gateway.replay(session_id)
    statements = [r["body"] for r in records if r["kind"] == "statement"]
    assert [(s["sql"], s["params"]) for s in statements] == [
        ("insert into audit_marks (marker, note) values ($1, 'before kill')", [marker])
    ]
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


def _journal_size(data_dir: Path) -> int:
    """Size of the segment being written (the journal's newest segment)."""
    segments = sorted((data_dir / "journal").glob("segment-*.hjl"))
    assert segments, "no journal segment"
    return segments[-1].stat().st_size


def test_recorder_failure_blocks_the_statement(pg: PgServer, tmp_path: Path) -> None:
    """The journal cannot grow past a file size limit (RLIMIT_FSIZE). Small statements are
    sent while there is clearly room for them and their results; then one statement whose
    record alone cannot fit. It must fail on the client (58030) and never reach the target,
    while every statement that did reach the target is in the recording."""
    # First run: let the gateway create its data directory (certificate, index), measure it.
    with running_gateway(pg, tmp_path / "gw") as gateway:
        pass
    limit = _largest_file(gateway.data_dir) + 16 * 1024

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    capped = Gateway(pg, tmp_path / "gw", preexec_fn=cap_file_size)
    capped.start()
    small_note = "s" * 400
    sent: list[str] = []
    try:
        with capped.connect() as conn:
            growth = 0
            for i in range(1000):
                room = limit - _journal_size(capped.data_dir)
                if room < 3 * growth + 2048:
                    break
                marker = unique_marker(f"fits{i}")
                size_before = _journal_size(capped.data_dir)
                conn.execute(
                    "insert into audit_marks (marker, note) values (%s, %s)", (marker, small_note)
                )
                growth = max(growth, _journal_size(capped.data_dir) - size_before)
                sent.append(marker)
            assert sent, "the limit left no room even for one statement"
            too_big = unique_marker("toobig")
            room = limit - _journal_size(capped.data_dir)
            with pytest.raises(psycopg.Error) as failure:
                conn.execute(
                    "insert into audit_marks (marker, note) values (%s, %s)",
                    (too_big, "b" * (room + 1024)),
                )
    finally:
        capped.stop()

    assert failure.value.sqlstate == "58030", f"{failure.value.sqlstate}: {failure.value}"
    assert "recording" in str(failure.value)
    # Not on the target.
    assert pg.scalar(f"select count(*) from audit_marks where marker = '{too_big}'") == "0"
    listed = ", ".join(f"'{m}'" for m in sent)
    assert pg.scalar(f"select count(*) from audit_marks where marker in ({listed})") == str(
        len(sent)
    )
    # Everything the target executed is in the recording; the refused statement is not.
    [session] = capped.sessions()
    recorded = [
        r["body"]["params"][0]
        for r in capped.replay(session_id_of(session))
        if r["kind"] == "statement"
    ]
    assert recorded == sent
    assert capped.audit_verify().returncode == 0


def test_sigterm_ends_live_sessions_and_records_why(pg: PgServer, tmp_path: Path) -> None:
    gateway = Gateway(pg, tmp_path / "gw")
    gateway.start()
    try:
        conn = gateway.connect()
        backend = conn.execute("select pg_backend_pid()").fetchone()
        assert backend is not None
        status = gateway.stop()
        assert status == 0, gateway.stderr_text()[-2000:]
        # The client is told why its session ended.
        with pytest.raises(psycopg.OperationalError) as ended:
            conn.execute("select 1")
        conn.close()
    finally:
        gateway.kill()
    assert ended.value.sqlstate == "57P01", ended.value
    # The upstream session is gone from the target.
    pids = pg.scalar("select string_agg(pid::text, ' ') from pg_stat_activity")
    assert str(backend[0]) not in pids.split()
    [session] = gateway.sessions()
    assert session["state"] == "ended"
    assert "shutdown" in session["end_reason"]
    assert gateway.audit_verify().returncode == 0


def test_sigterm_right_after_ready_is_a_clean_shutdown(pg: PgServer, tmp_path: Path) -> None:
    """A supervisor may stop the gateway the moment it reports ready; that must be the
    same orderly shutdown as later (exit status 0), not death by the default signal
    action. The window is small, so the start/stop is repeated a few times."""
    for attempt in range(5):
        gateway = Gateway(pg, tmp_path / f"gw{attempt}")
        gateway.start()
        status = gateway.stop()
        assert status == 0, (
            f"attempt {attempt}: exit status {status}; stderr:\n{gateway.stderr_text()[-2000:]}"
        )
