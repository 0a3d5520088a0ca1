"""Writing sessions and reading them back: order, chaining, rotation, the index."""

from __future__ import annotations

import random
import stat
from itertools import pairwise
from pathlib import Path

import pytest
import trio

from hoopd.recording import RecorderError, list_sessions, read_session, verify
from hoopd.recording.frames import ZERO_HASH
from hoopd.recording.journal import Journal
from hoopd.recording.segments import list_segments
from tests.unit.test_recording_support import ALICE, BOB, result, start, statement


async def test_records_come_back_exactly_as_appended_in_order(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    session = start(journal)
    await session.append([("auth", {"outcome": "accepted", "identity": ALICE})])
    await session.append(
        [statement("SELECT * FROM accounts WHERE id = $1", "42", b"\x00\x01", None)]
    )
    await session.append([result("SELECT 1", 1), statement("UPDATE accounts SET x = 1")])
    await session.append(
        [
            (
                "result",
                {"error": {"severity": "ERROR", "code": "42501", "message": "permission denied"}},
            )
        ]
    )
    await session.close("client-disconnect")
    journal.close()

    records = list(read_session(tmp_path, session.session_id))
    assert [r.kind for r in records] == [
        "session_start",
        "auth",
        "statement",
        "result",
        "statement",
        "result",
        "session_end",
    ]
    assert [r.seq for r in records] == list(range(7))
    start_body = records[0].body
    assert start_body == {
        "connection": "appdb",
        "protocol": "postgres",
        "client_addr": "127.0.0.1:50123",
        "identity": ALICE,
        "attributes": {"application_name": "psql"},
    }
    assert records[2].body["params"] == ["42", b"\x00\x01", None]
    assert records[4].body["sql"] == "UPDATE accounts SET x = 1"
    assert records[5].body["error"]["code"] == "42501"
    assert records[6].body == {"reason": "client-disconnect"}
    # Each record chains to the one before it; times never go backwards.
    assert records[0].prev_hash == ZERO_HASH
    assert all(b.prev_hash == a.hash for a, b in pairwise(records))
    assert all(a.time <= b.time for a, b in pairwise(records))


async def test_interleaved_sessions_across_segment_rotation_stay_separate_and_intact(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path, segment_bytes=2048)
    sessions = [start(journal, identity=ALICE if i % 2 else BOB) for i in range(6)]
    expected: dict[str, list[str]] = {s.session_id: [] for s in sessions}
    rng = random.Random(7)
    for n in range(300):
        session = rng.choice(sessions)
        sql = f"SELECT {n} /* {session.session_id} */"
        await session.append([statement(sql), result("SELECT 1", 1)])
        expected[session.session_id].append(sql)
    for session in sessions:
        await session.close("client-disconnect")
    journal.close()

    assert len(list_segments(tmp_path)) > 10
    for session in sessions:
        records = list(read_session(tmp_path, session.session_id))
        assert [r.body["sql"] for r in records if r.kind == "statement"] == expected[
            session.session_id
        ]
        assert [r.seq for r in records] == list(range(len(records)))
        assert len({r.segment for r in records}) > 1
    report = verify(tmp_path)
    assert report.ok, report.breaks
    assert (report.sessions, report.records) == (6, sum(2 * len(v) + 2 for v in expected.values()))


async def test_a_restarted_gateway_continues_the_journal_in_a_new_segment(tmp_path: Path) -> None:
    ids = []
    for run in range(3):
        journal = Journal.open(tmp_path)
        session = start(journal)
        await session.append([statement(f"SELECT {run}")])
        await session.close("client-disconnect")
        journal.close()
        ids.append(session.session_id)
    assert [n for n, _ in list_segments(tmp_path)] == [1, 2, 3]
    assert [s.session_id for s in list_sessions(tmp_path)] == ids
    assert verify(tmp_path).ok


async def test_listing_shows_identity_counts_and_whether_sessions_ended(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    done = start(journal, identity=None, client_addr="10.0.0.9:4000")
    await done.append([("auth", {"outcome": "accepted", "identity": BOB})])
    for n in range(3):
        await done.append([statement(f"SELECT {n}"), result("SELECT 1", 1)])
    await done.close("client-disconnect")
    running = start(journal)
    await running.append([statement("SELECT 1")])

    listed = {s.session_id: s for s in list_sessions(tmp_path)}
    ended, active = listed[done.session_id], listed[running.session_id]
    assert ended.state == "ended" and ended.end_reason == "client-disconnect"
    assert (ended.subject, ended.client_addr, ended.statement_count) == ("bob", "10.0.0.9:4000", 3)
    assert ended.record_count == 9 and ended.ended_at is not None
    assert ended.ended_at >= ended.started_at
    assert active.state == "active" and active.ended_at is None and active.subject == "alice"

    journal.close()  # the gateway stops without ending the second session
    assert {s.session_id: s.state for s in list_sessions(tmp_path)} == {
        done.session_id: "ended",
        running.session_id: "unterminated",
    }


async def test_only_one_gateway_may_write_a_data_dir(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    try:
        with pytest.raises(RecorderError) as caught:
            Journal.open(tmp_path)
        assert str(caught.value) == "session recording is unavailable"
    finally:
        journal.close()
    Journal.open(tmp_path).close()  # free again once the first one closed


async def test_appending_after_the_journal_closed_is_refused(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    session = start(journal)
    journal.close()
    with pytest.raises(RecorderError):
        await session.append([statement("SELECT 1")])
    with pytest.raises(RecorderError):
        start(journal)
    await session.close("shutdown")  # never raises


async def test_a_body_that_cannot_be_encoded_is_refused_without_ending_the_session(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path)
    session = start(journal)
    with pytest.raises(RecorderError):
        await session.append([statement("SELECT 1"), ("statement", {"sql": "\udcff"})])
    await session.append([statement("SELECT 2")])
    await session.close("client-disconnect")
    journal.close()
    sqls = [r.body.get("sql") for r in read_session(tmp_path, session.session_id)]
    assert sqls == [None, "SELECT 2", None]  # nothing of the refused append was written
    assert verify(tmp_path).ok


async def test_recordings_are_private_to_the_gateway_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    journal = Journal.open(data_dir)
    session = start(journal)
    await session.close("client-disconnect")
    journal.close()
    for path in [data_dir, data_dir / "journal", *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is accessible to others ({oct(mode)})"


async def test_append_in_process_crash_mode_does_not_yield(tmp_path: Path) -> None:
    # Nothing else runs between the write and the return, so a cancelled caller
    # cannot have written a record it believes was not written.
    journal = Journal.open(tmp_path)
    session = start(journal)
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        for _ in range(10):
            await session.append([statement("SELECT 1")])
        assert not ran
    journal.close()


async def test_one_append_of_thousands_of_records_is_written_whole(tmp_path: Path) -> None:
    # A pipelined batch (psycopg's pipeline mode, a long multi-statement chunk) can
    # bring thousands of commands at once, more pieces than one writev may take.
    journal = Journal.open(tmp_path)
    session = start(journal)
    chunk = bytes(range(256)) * 40  # large enough to be written in place
    batch = [statement(f"SELECT {n}") for n in range(3000)]
    batch += [("stdout", {"channel": 0, "data": chunk}) for _ in range(400)]
    await session.append(batch)
    await session.close("client-disconnect")
    journal.close()
    records = list(read_session(tmp_path, session.session_id))
    assert [r.body["sql"] for r in records if r.kind == "statement"] == [
        f"SELECT {n}" for n in range(3000)
    ]
    assert [r.body["data"] for r in records if r.kind == "stdout"] == [chunk] * 400
    assert verify(tmp_path).ok
