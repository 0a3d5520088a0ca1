"""Waiting for a decision, on trio's virtual clock: a five-minute deadline takes no
real time, and every elapsed time below is exact virtual time."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from hoopd.approvals import ApprovalError, ApprovalRequest, ApprovalStore, wait_for_decision
from tests.unit.test_approvals_support import BOB, CAROL, new_request


@pytest.fixture
def store(tmp_path: Path) -> ApprovalStore:
    return ApprovalStore.open(tmp_path)


async def test_an_undecided_request_expires_at_its_deadline(
    store: ApprovalStore, autojump_clock: trio.testing.MockClock
) -> None:
    request = new_request(store, deadline=store.now() + 300)
    start = trio.current_time()

    outcome = await wait_for_decision(store, request.id)

    waited = trio.current_time() - start
    assert outcome.status == "expired"
    # The wall clock moved a little while the request was made, never forwards by 300 s.
    assert 299 <= waited <= 300
    stored = store.get(request.id)
    assert stored is not None and stored.status == "expired"


async def test_the_wait_ends_when_approvers_decide(
    store: ApprovalStore, autojump_clock: trio.testing.MockClock
) -> None:
    request = new_request(store, min_approvals=2)
    outcome: list[ApprovalRequest] = []

    async def waiter() -> None:
        outcome.append(await wait_for_decision(store, request.id, poll_seconds=0.5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        start = trio.current_time()
        await trio.sleep(10)
        store.decide(request.id, BOB, True, "")
        await trio.sleep(10)
        assert outcome == []  # one approval of two: still waiting
        store.decide(request.id, CAROL, True, "")

    assert outcome[0].status == "approved"
    assert 20 <= trio.current_time() - start <= 20.5


async def test_a_deny_ends_the_wait(
    store: ApprovalStore, autojump_clock: trio.testing.MockClock
) -> None:
    request = new_request(store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_decide_later, store, request.id)
        outcome = await wait_for_decision(store, request.id)
    assert (outcome.status, outcome.resolution) == ("denied", "denied by bob: no")


async def _decide_later(store: ApprovalStore, rid: str) -> None:
    await trio.sleep(30)
    store.decide(rid, BOB, False, "no")


async def test_a_client_going_away_cancels_the_wait_then_the_request(
    store: ApprovalStore, autojump_clock: trio.testing.MockClock
) -> None:
    request = new_request(store)

    with trio.move_on_after(5) as scope:
        await wait_for_decision(store, request.id)
    assert scope.cancelled_caught
    still = store.get(request.id)
    assert still is not None and still.status == "pending"

    store.cancel(request.id, "client disconnected")
    outcome = await wait_for_decision(store, request.id)
    assert (outcome.status, outcome.resolution) == ("cancelled", "cancelled: client disconnected")


async def test_waiting_for_an_unknown_request_is_an_error(store: ApprovalStore) -> None:
    with pytest.raises(ApprovalError, match="no approval request"):
        await wait_for_decision(store, "zzzzzzzzzz")
