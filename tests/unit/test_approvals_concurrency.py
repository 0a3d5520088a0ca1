"""Two processes deciding the same requests at the same moment: each request gets
exactly one outcome, and no decision is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hoopd.approvals import ApprovalStore
from tests.unit.test_approvals_support import new_request

REPO_ROOT = Path(__file__).resolve().parents[2]

# Each process waits for the same start instant, then decides every request in turn,
# printing "<id> won" or "<id> <error kind>".
DECIDER = """
import sys, time
from pathlib import Path
from hoopd.approvals import ApprovalError, ApprovalStore
from hoopd.identity.base import Identity

data_dir, who, verdict, start, *ids = sys.argv[1:]
store = ApprovalStore.open(Path(data_dir))
me = Identity(who, ("dba",), "st:" + who)
while time.time() < float(start):
    pass
for rid in ids:
    try:
        store.decide(rid, me, verdict == "approve", "because")
        print(rid, "won")
    except ApprovalError as exc:
        print(rid, exc.kind)
"""


def race(data_dir: Path, ids: list[str], *deciders: tuple[str, str]) -> list[dict[str, str]]:
    """Run one process per (who, verdict) from the same instant; each one's results."""
    start = time.time() + 2.0  # time for every interpreter to start and open the store
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDER, str(data_dir), who, verdict, str(start), *ids],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who, verdict in deciders
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append({rid: kind for rid, kind in (line.split() for line in out.splitlines())})
    return results


def test_an_approve_and_a_deny_racing_give_exactly_one_outcome(tmp_path: Path) -> None:
    with ApprovalStore.open(tmp_path) as store:
        ids = [new_request(store).id for _ in range(40)]

    bob, carol = race(tmp_path, ids, ("bob", "approve"), ("carol", "deny"))

    with ApprovalStore.open(tmp_path) as store:
        for rid in ids:
            outcomes = sorted([bob[rid], carol[rid]])
            assert outcomes == ["not-pending", "won"], (rid, outcomes)
            request = store.get(rid)
            assert request is not None
            winner = ("bob", "approved") if bob[rid] == "won" else ("carol", "denied")
            assert ([d.approver for d in request.decisions], request.status) == (
                [winner[0]],
                winner[1],
            )


def test_two_approvals_racing_are_both_counted(tmp_path: Path) -> None:
    with ApprovalStore.open(tmp_path) as store:
        ids = [new_request(store, min_approvals=2).id for _ in range(40)]

    bob, carol = race(tmp_path, ids, ("bob", "approve"), ("carol", "approve"))

    assert set(bob.values()) == set(carol.values()) == {"won"}
    with ApprovalStore.open(tmp_path) as store:
        for rid in ids:
            request = store.get(rid)
            assert request is not None
            assert request.status == "approved"
            assert sorted(d.approver for d in request.decisions) == ["bob", "carol"]
