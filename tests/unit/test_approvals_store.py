"""The approval rules as approvers and requesters meet them, through the store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hoopd.approvals import ApprovalError, ApprovalStore
from hoopd.approvals.rows import store_path
from hoopd.identity.base import Identity
from tests.unit.test_approvals_support import ALICE, BOB, CAROL, DAVE, FakeClock, new_request


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> ApprovalStore:
    return ApprovalStore.open(tmp_path, clock=clock)


def refusal(store: ApprovalStore, rid: str, who: Identity, approve: bool, reason: str = "") -> str:
    with pytest.raises(ApprovalError) as info:
        store.decide(rid, who, approve, reason)
    return f"{info.value.kind}: {info.value}"


def test_one_approval_from_an_approver_group_approves(store: ApprovalStore) -> None:
    request = new_request(store)
    assert request.status == "pending"
    assert len(request.id) == 10

    decided = store.decide(request.id, BOB, True, "checked the ticket")

    assert decided.status == "approved"
    assert decided.resolution == "approved by bob"
    assert [(d.approver, d.decision, d.reason) for d in decided.decisions] == [
        ("bob", "approve", "checked the ticket")
    ]
    assert store.get(request.id) == decided
    assert store.pending() == []


def test_nobody_approves_their_own_request(store: ApprovalStore) -> None:
    request = new_request(store, approver_groups=("dev",))  # alice is in dev herself

    assert "forbidden" in refusal(store, request.id, ALICE, True)
    assert "their own" in refusal(store, request.id, ALICE, False, "oops")
    assert store.get(request.id) == request  # nothing recorded


def test_an_actor_the_request_was_made_through_cannot_approve_it(store: ApprovalStore) -> None:
    request = new_request(store, actor_chain=("deploy-bot",))
    bot = Identity("deploy-bot", ("dba",), "st:bot")

    assert refusal(store, request.id, bot, True).startswith("forbidden: deploy-bot cannot decide")


def test_only_members_of_an_approver_group_decide(store: ApprovalStore) -> None:
    request = new_request(store, approver_groups=("dba", "security"))

    message = refusal(store, request.id, DAVE, True)

    assert message == (
        f"forbidden: dave cannot decide request {request.id}: it needs a member of dba,"
        " security (dave is in dev)"
    )
    assert store.decide(request.id, CAROL, True, "").status == "approved"


def test_min_approvals_counts_distinct_approvers(store: ApprovalStore) -> None:
    request = new_request(store, min_approvals=2)

    after_bob = store.decide(request.id, BOB, True, "")
    assert (after_bob.status, after_bob.approvals) == ("pending", 1)
    assert refusal(store, request.id, BOB, True) == (
        f"duplicate: bob has already approved request {request.id}; each approver counts once"
    )
    # Another token of the same person is still the same approver.
    assert refusal(store, request.id, Identity("bob", ("dba",), "st:other"), True).startswith(
        "duplicate"
    )

    after_carol = store.decide(request.id, CAROL, True, "")
    assert after_carol.status == "approved"
    assert after_carol.resolution == "approved by bob, carol"


def test_one_deny_denies_even_after_approvals(store: ApprovalStore) -> None:
    request = new_request(store, min_approvals=2)
    store.decide(request.id, BOB, True, "")

    denied = store.decide(request.id, CAROL, False, "not during the freeze")

    assert denied.status == "denied"
    assert denied.resolution == "denied by carol: not during the freeze"
    late = Identity("erin", ("dba",), "st:erin")
    assert refusal(store, request.id, late, True) == (
        f"not-pending: request {request.id} is no longer pending:"
        " denied by carol: not during the freeze"
    )


def test_a_deny_needs_a_reason(store: ApprovalStore) -> None:
    request = new_request(store)

    assert refusal(store, request.id, BOB, False, "  ") == (
        "invalid: a deny needs a reason (the requester is told it)"
    )
    assert store.get(request.id) == request


def test_unknown_ids_are_refused_and_typed_ids_are_forgiven(store: ApprovalStore) -> None:
    request = new_request(store)
    typed = f"{request.id[:5].upper()}-{request.id[5:].upper()}"

    assert store.get(typed) == request
    assert refusal(store, "zzzzzzzzzz", BOB, True) == "unknown: no approval request 'zzzzzzzzzz'"
    assert refusal(store, "not an id", BOB, True).startswith("unknown")
    with pytest.raises(ApprovalError, match="no approval request"):
        store.cancel("zzzzzzzzzz", "client disconnected")


def test_a_request_expires_at_its_deadline(store: ApprovalStore, clock: FakeClock) -> None:
    request = new_request(store, deadline=clock.now + 60)
    clock.now = request.deadline - 0.001
    assert [r.id for r in store.pending()] == [request.id]

    clock.now = request.deadline
    assert store.pending() == []
    expired = store.get(request.id)
    assert expired is not None
    assert expired.status == "expired"
    assert expired.resolution.startswith("expired: no decision by ")
    assert refusal(store, request.id, BOB, True).startswith("not-pending")


def test_a_decision_after_the_deadline_is_refused_and_expires_it(
    store: ApprovalStore, clock: FakeClock
) -> None:
    request = new_request(store, deadline=clock.now + 60)
    clock.now += 61

    # Nobody listed the requests in between: the decision itself notices.
    assert refusal(store, request.id, BOB, True).startswith(
        f"not-pending: request {request.id} is no longer pending: expired"
    )
    expired = store.get(request.id)
    assert expired is not None and expired.status == "expired"
    assert expired.decisions == ()


def test_expire_overdue_returns_what_it_expired(store: ApprovalStore, clock: FakeClock) -> None:
    soon = new_request(store, deadline=clock.now + 10)
    later = new_request(store, deadline=clock.now + 100)

    expired = store.expire_overdue(clock.now + 10)

    assert [(r.id, r.status) for r in expired] == [(soon.id, "expired")]
    assert [r.id for r in store.pending()] == [later.id]


def test_cancel_ends_a_pending_request_and_leaves_a_decided_one(store: ApprovalStore) -> None:
    waiting = new_request(store)
    approved = new_request(store)
    store.decide(approved.id, BOB, True, "")

    store.cancel(waiting.id, "client disconnected")
    store.cancel(approved.id, "client disconnected")

    cancelled = store.get(waiting.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.resolution) == (
        "cancelled",
        "cancelled: client disconnected",
    )
    assert refusal(store, waiting.id, BOB, True).startswith("not-pending")
    still = store.get(approved.id)
    assert still is not None and still.status == "approved"


def test_a_second_store_on_the_same_data_dir_sees_the_same_requests(
    store: ApprovalStore, tmp_path: Path
) -> None:
    request = new_request(store)
    with ApprovalStore.open(tmp_path) as other:
        assert [r.id for r in other.pending()] == [request.id]
        other.decide(request.id, BOB, True, "")
    decided = store.get(request.id)
    assert decided is not None and decided.status == "approved"


def test_the_database_is_private(store: ApprovalStore, tmp_path: Path) -> None:
    new_request(store)
    assert stat.S_IMODE(store_path(tmp_path).stat().st_mode) == 0o600


def test_requests_nobody_could_approve_are_refused_at_creation(store: ApprovalStore) -> None:
    with pytest.raises(ValueError, match="approver group"):
        new_request(store, approver_groups=())
    with pytest.raises(ValueError, match="min_approvals"):
        new_request(store, min_approvals=0)
    with pytest.raises(ValueError, match="command_digest"):
        new_request(store, command_digest="abc")
    assert store.pending() == []
