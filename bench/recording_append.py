"""Measure what recording costs: ``python bench/recording_append.py [DIR]``.

Prints the CPU time one ``append`` takes in process-crash mode (best and median
of five rounds, for one and for two records: a statement, or a result plus the
next statement), and throughput, flushes and latency in power-loss mode with 1
and 50 concurrent sessions. DIR (default: a temporary directory) must be on the
disk to be measured; the figures in docs/decisions/0003-recording-journal.md came
from this script.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from hoopd.recording.journal import Journal, SessionRecorder

STATEMENT: dict[str, Any] = {
    "sql": "SELECT * FROM accounts WHERE id = $1",
    "origin": "execute",
    "classification": {
        "kinds": ["select"],
        "tables_read": ["public.accounts"],
        "tables_written": [],
        "functions": [],
        "statement_count": 1,
    },
    "params": ["42"],
}
RESULT: dict[str, Any] = {"tag": "SELECT 1", "rows": 1}
Batch = Sequence[tuple[str, Mapping[str, Any]]]


def _start(journal: Journal) -> SessionRecorder:
    return journal.start_session(
        connection="bench",
        protocol="postgres",
        client_addr="127.0.0.1:1",
        identity=None,
        attributes={},
    )


async def cpu_per_append(directory: Path, batch: Batch, count: int = 50_000) -> tuple[float, float]:
    """(best, median) CPU microseconds per append, process-crash mode."""
    journal = Journal.open(directory)
    session = _start(journal)
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(count):
            await session.append(batch)
        rounds.append((time.process_time() - started) / count * 1e6)
    await session.close("done")
    journal.close()
    return min(rounds), statistics.median(rounds)


async def group_commit(directory: Path, sessions: int, appends: int) -> dict[str, float]:
    journal = Journal.open(directory, "power-loss")
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        recorders = [_start(journal) for _ in range(sessions)]

        async def client(recorder: SessionRecorder) -> None:
            for _ in range(appends):
                started = time.perf_counter()
                await recorder.append([("result", RESULT), ("statement", STATEMENT)])
                latencies.append(time.perf_counter() - started)

        cpu, wall, flushes = time.process_time(), time.perf_counter(), journal.flush_count
        async with trio.open_nursery() as clients:
            for recorder in recorders:
                clients.start_soon(client, recorder)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        flushes = journal.flush_count - flushes
        for recorder in recorders:
            await recorder.close("done")
        nursery.cancel_scope.cancel()
    journal.close()
    total = sessions * appends
    latencies.sort()
    return {
        "appends": total,
        "flushes": flushes,
        "appends/s": round(total / wall),
        "cpu us/append": round(cpu / total * 1e6, 1),
        "p50 ms": round(latencies[total // 2] * 1e3, 2),
        "p99 ms": round(latencies[int(total * 0.99)] * 1e3, 2),
    }


async def main(base: Path) -> None:
    batches: list[tuple[str, Batch]] = [
        ("1 record ", [("statement", STATEMENT)]),
        ("2 records", [("result", RESULT), ("statement", STATEMENT)]),
    ]
    for name, batch in batches:
        best, median = await cpu_per_append(base / f"crash-{len(batch)}", batch)
        print(f"process-crash, {name}: {best:.1f} us CPU per append (median {median:.1f})")
    for sessions, appends in ((1, 500), (50, 100)):
        figures = await group_commit(base / f"power-{sessions}", sessions, appends)
        print(f"power-loss, {sessions} sessions: {figures}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        trio.run(main, Path(tmp))
