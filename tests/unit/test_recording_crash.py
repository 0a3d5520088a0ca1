"""Real failures in real processes: a gateway killed mid-session, a write the
kernel refuses. No mocks: each test runs a child Python process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hoopd.recording import list_sessions, read_session, verify
from hoopd.recording.journal import Journal
from hoopd.recording.segments import list_segments
from tests.unit.test_recording_support import start, statement

REPO_ROOT = Path(__file__).resolve().parents[2]

KILLED_AFTER_APPEND = """
import os, pathlib, signal, sys
import trio
from hoopd.recording.journal import Journal

async def main():
    journal = Journal.open(pathlib.Path(sys.argv[1]), sys.argv[2])
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        session = journal.start_session(
            connection="appdb", protocol="postgres", client_addr="127.0.0.1:5000",
            identity={"subject": "alice"}, attributes={})
        await session.append([("statement", {"sql": "SELECT 'acknowledged'"})])
        print(session.session_id, flush=True)
        # The statement would now be sent to the target; the gateway dies instead.
        os.kill(os.getpid(), signal.SIGKILL)

trio.run(main)
"""

WRITE_REFUSED = """
import json, pathlib, resource, sys
import trio
from hoopd.recording import RecorderError
from hoopd.recording.journal import Journal

LIMIT = 64 * 1024
resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))  # writes past it: EFBIG

async def main():
    journal = Journal.open(pathlib.Path(sys.argv[1]))
    session = journal.start_session(
        connection="appdb", protocol="postgres", client_addr="127.0.0.1:5000",
        identity=None, attributes={})
    acknowledged, error, later = [], None, None
    for n in range(10000):
        if sys.argv[2] == "statements":
            sql = f"SELECT {n} AS " + "padding_" * 20
            record = ("statement", {"sql": sql})
        else:  # output chunks large enough to be written in pieces (writev)
            sql = f"{n % 256:02x}"
            record = ("stdout", {"channel": 0, "data": bytes([n % 256]) * 9000})
        try:
            await session.append([record])
        except RecorderError as exc:
            error = str(exc)
            break
        acknowledged.append(sql)
    try:
        await session.append([("statement", {"sql": "SELECT 'after the failure'"})])
    except RecorderError as exc:
        later = str(exc)
    await session.close("client-disconnect")  # must not raise
    journal.close()
    print(json.dumps({"id": session.session_id, "acknowledged": acknowledged,
                      "error": error, "later": later}))

trio.run(main)
"""


def run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("durability", ["process-crash", "power-loss"])
async def test_a_record_acknowledged_before_sigkill_is_on_disk(
    tmp_path: Path, durability: str
) -> None:
    child = run_child(KILLED_AFTER_APPEND, str(tmp_path), durability)
    assert child.returncode == -signal.SIGKILL, child.stderr
    session_id = child.stdout.strip()

    records = list(read_session(tmp_path, session_id))
    assert [(r.kind, r.body.get("sql")) for r in records] == [
        ("session_start", None),
        ("statement", "SELECT 'acknowledged'"),
    ]
    report = verify(tmp_path)
    assert report.ok, report.breaks
    assert report.unterminated == [session_id]
    assert [(s.session_id, s.state) for s in list_sessions(tmp_path)] == [
        (session_id, "unterminated")
    ]

    # The next gateway carries on, and the journal still verifies as one chain.
    journal = Journal.open(tmp_path)
    session = start(journal)
    await session.append([statement("SELECT 2")])
    await session.close("client-disconnect")
    journal.close()
    report = verify(tmp_path)
    assert report.ok and report.unterminated == [session_id] and report.sessions == 2


@pytest.mark.parametrize("records", ["statements", "chunks"])
async def test_a_write_the_kernel_refuses_fails_the_append_and_leaves_no_partial_frame(
    tmp_path: Path, records: str
) -> None:
    child = run_child(WRITE_REFUSED, str(tmp_path), records)
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout)
    assert outcome["error"] == "session recording is unavailable"
    assert outcome["later"] == "session recording is unavailable"  # stays failed
    assert (100 if records == "statements" else 3) < len(outcome["acknowledged"]) < 10000
    assert "EFBIG" in child.stderr  # the cause is logged for the operator

    # Every acknowledged record is there, nothing else, and the journal holds
    # only whole frames (the partial write was cut off again).
    recorded = list(read_session(tmp_path, outcome["id"]))
    if records == "statements":
        written = [r.body["sql"] for r in recorded if r.kind == "statement"]
    else:
        written = [f"{r.body['data'][0]:02x}" for r in recorded if r.kind == "stdout"]
        assert all(len(r.body["data"]) == 9000 for r in recorded if r.kind == "stdout")
    assert written == outcome["acknowledged"]
    report = verify(tmp_path)
    assert report.ok, report.breaks
    assert list_segments(tmp_path)[0][1].stat().st_size <= 64 * 1024
    ends = [r.body for r in recorded if r.kind == "session_end"]
    assert ends in ([], [{"reason": "client-disconnect", "recording_failed": True}])
