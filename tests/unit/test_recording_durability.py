"""``durability = "power-loss"``: appends wait for a disk flush, and concurrent
appends share one (group commit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trio

from hoopd.recording import RecorderError, list_sessions, read_session, verify
from hoopd.recording.journal import (
    PAGE_CACHE_KEEP_BYTES,
    PAGE_CACHE_RELEASE_STEP,
    Durability,
    Journal,
)
from hoopd.recording.segments import list_segments
from tests.unit.test_recording_support import result, start, statement


async def test_each_append_returns_only_after_a_flush(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, "power-loss")
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        session = start(journal)
        for n in range(5):
            before = journal.flush_count
            await session.append([statement(f"SELECT {n}")])
            assert journal.flush_count > before
        await session.close("client-disconnect")
        nursery.cancel_scope.cancel()
    journal.close()


async def test_concurrent_sessions_share_flushes(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, "power-loss")
    appends_per_session = 10
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        sessions = [start(journal) for _ in range(50)]

        async def client(index: int) -> None:
            for n in range(appends_per_session):
                await sessions[index].append(
                    [result("SELECT 1", 1), statement(f"SELECT {n} /* {index} */")]
                )

        flushes_before = journal.flush_count
        async with trio.open_nursery() as clients:
            for index in range(len(sessions)):
                clients.start_soon(client, index)
        flushes = journal.flush_count - flushes_before
        for session in sessions:
            await session.close("client-disconnect")
        nursery.cancel_scope.cancel()
    journal.close()

    appends = len(sessions) * appends_per_session
    assert 0 < flushes < appends / 5, f"{flushes} flushes for {appends} appends"
    assert verify(tmp_path).ok
    for index, session in enumerate(sessions):
        sqls = [
            r.body["sql"]
            for r in read_session(tmp_path, session.session_id)
            if r.kind == "statement"
        ]
        assert sqls == [f"SELECT {n} /* {index} */" for n in range(appends_per_session)]


async def test_power_loss_mode_refuses_rather_than_hangs_without_the_flusher(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path, "power-loss")
    session = start(journal)  # writing works; waiting for a flush cannot
    with trio.fail_after(5), pytest.raises(RecorderError):
        await session.append([statement("SELECT 1")])
    journal.close()


@pytest.mark.parametrize("durability", ["process-crash", "power-loss"])
async def test_a_session_closed_while_cancelled_is_still_recorded_as_ended(
    tmp_path: Path, durability: Durability
) -> None:
    journal = Journal.open(tmp_path, durability)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        session = start(journal)
        await session.append([statement("SELECT 1")])
        with trio.CancelScope() as scope:
            scope.cancel()  # the connection's task is being torn down
            await session.close("gateway-shutdown")
        nursery.cancel_scope.cancel()
    journal.close()

    assert [r.kind for r in read_session(tmp_path, session.session_id)][-1] == "session_end"
    (summary,) = list_sessions(tmp_path)
    assert (summary.state, summary.end_reason, summary.statement_count) == (
        "ended",
        "gateway-shutdown",
        1,
    )


async def test_sessions_closed_after_the_flusher_stopped_are_still_ended(tmp_path: Path) -> None:
    # Shutdown order is not guaranteed: the flusher may be cancelled first.
    journal = Journal.open(tmp_path, "power-loss")
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        session = start(journal)
        await session.append([statement("SELECT 1")])
        nursery.cancel_scope.cancel()
    with pytest.raises(RecorderError):  # durability can no longer be promised
        await session.append([statement("SELECT 2")])
    await session.close("gateway-shutdown")
    journal.close()

    (summary,) = list_sessions(tmp_path)
    assert (summary.state, summary.end_reason) == ("ended", "gateway-shutdown")
    assert verify(tmp_path).ok
    sqls = [r.body.get("sql") for r in read_session(tmp_path, session.session_id)]
    assert "SELECT 2" not in sqls  # refused before it was written


def _cached_bytes(path: Path) -> int:
    """How much of ``path`` is in the page cache, as util-linux's ``fincore`` reports it."""
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


async def test_a_long_recording_does_not_fill_the_page_cache(tmp_path: Path) -> None:
    # Power-loss mode: every append waits for its flush, so the pages written
    # before it are clean and the kernel can drop them when asked.
    journal = Journal.open(tmp_path, "power-loss")
    chunk = bytes(range(256)) * 256  # 64 KiB of output, as a bulk transfer records it
    total = 32 * 1024 * 1024
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        session = start(journal, protocol="ssh")
        for _ in range(total // len(chunk)):
            await session.append([("stdout", {"channel": 0, "data": chunk})])
        await session.close("client-disconnect")
        nursery.cancel_scope.cancel()
    (segment,) = [p for _, p in list_segments(tmp_path)]
    assert segment.stat().st_size > total
    # Only about the last PAGE_CACHE_KEEP_BYTES (+ one release step) stay cached.
    assert _cached_bytes(segment) <= PAGE_CACHE_KEEP_BYTES + 2 * PAGE_CACHE_RELEASE_STEP
    journal.close()
    records = [r for r in read_session(tmp_path, session.session_id) if r.kind == "stdout"]
    assert len(records) == total // len(chunk) and all(r.body["data"] == chunk for r in records)
    assert verify(tmp_path).ok
