"""Who may see and decide a request, and what a decision does to it.

These are pure functions of a request, an identity and the time, so the store applies
exactly the same rules whichever process, command or API call is deciding.
"""

from __future__ import annotations

from typing import Final

from hoopd.approvals.model import ApprovalError, ApprovalRequest, Decision, Status
from hoopd.approvals.text import shown, utc
from hoopd.identity.base import Identity

MAX_REASON_CHARS: Final = 2000


def is_own_request(request: ApprovalRequest, who: Identity) -> bool:
    """True when ``who`` is the requester, acts for it, or is acted for by it.

    A delegated token names its actors; letting any of them approve would let one
    person approve their own command under another name.
    """
    return (
        who.subject == request.requester
        or who.subject in request.actor_chain
        or request.requester in who.actor_chain
    )


def is_approver(request: ApprovalRequest, who: Identity) -> bool:
    return not set(who.groups).isdisjoint(request.approver_groups)


def may_see(request: ApprovalRequest, who: Identity) -> bool:
    """The requester and the members of its approver groups may see a request."""
    return is_own_request(request, who) or is_approver(request, who)


def check_decision(
    request: ApprovalRequest, approver: Identity, approve: bool, reason: str, now: float
) -> None:
    """Raise :class:`ApprovalError` unless ``approver`` may decide ``request`` now.

    Checked in this order: the request is pending, its deadline has not passed, the
    approver is not the requester, is in an approver group, has not decided it before,
    and gives a reason of at most 2000 characters (required to deny).
    """
    rid, who = request.id, shown(approver.subject)
    if request.status != "pending":
        raise ApprovalError(
            "not-pending", f"request {rid} is no longer pending: {shown(request.resolution)}"
        )
    if now >= request.deadline:
        raise ApprovalError(
            "not-pending", f"request {rid} expired at {utc(request.deadline)}, before this decision"
        )
    if is_own_request(request, approver):
        raise ApprovalError(
            "forbidden",
            f"{who} cannot decide request {rid}: it is their own"
            " (nobody approves their own commands)",
        )
    if not is_approver(request, approver):
        theirs = ", ".join(shown(g) for g in approver.groups) or "no groups"
        raise ApprovalError(
            "forbidden",
            f"{who} cannot decide request {rid}: it needs a member of"
            f" {', '.join(shown(g) for g in request.approver_groups)} ({who} is in {theirs})",
        )
    earlier = next((d for d in request.decisions if d.approver == approver.subject), None)
    if earlier is not None:
        done = "approved" if earlier.decision == "approve" else "denied"
        raise ApprovalError(
            "duplicate",
            f"{who} has already {done} request {rid}; each approver counts once",
        )
    if not approve and not reason.strip():
        raise ApprovalError("invalid", "a deny needs a reason (the requester is told it)")
    if len(reason) > MAX_REASON_CHARS:
        raise ApprovalError("invalid", f"the reason is longer than {MAX_REASON_CHARS} characters")


def status_after(request: ApprovalRequest, decisions: tuple[Decision, ...]) -> tuple[Status, str]:
    """The status and resolution once ``decisions`` are recorded: one deny denies;
    ``min_approvals`` distinct approvals approve; otherwise still pending."""
    deny = next((d for d in decisions if d.decision == "deny"), None)
    if deny is not None:
        return "denied", f"denied by {deny.approver}: {deny.reason}"
    approvers = [d.approver for d in decisions if d.decision == "approve"]
    if len(approvers) >= request.min_approvals:
        return "approved", f"approved by {', '.join(approvers)}"
    return "pending", ""


def expired_resolution(request: ApprovalRequest) -> str:
    got = request.approvals
    partial = f" ({got} of {request.min_approvals} approvals)" if got else ""
    return f"expired: no decision by {utc(request.deadline)}{partial}"
