"""What an approval request is, and the one error every refusal raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

Status = Literal["pending", "approved", "denied", "expired", "cancelled"]
STATUSES: Final[tuple[Status, ...]] = ("pending", "approved", "denied", "expired", "cancelled")
DecisionKind = Literal["approve", "deny"]
ErrorKind = Literal["unknown", "not-pending", "forbidden", "duplicate", "invalid"]


class ApprovalError(Exception):
    """A request cannot be acted on as asked; ``str()`` says why, for the person asking.

    ``kind`` classifies it for callers that map errors to codes: ``unknown`` (no such
    request), ``not-pending`` (already decided, expired or cancelled), ``forbidden``
    (this identity may not decide it), ``duplicate`` (this approver already decided it),
    ``invalid`` (a bad argument, such as a deny without a reason).
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


@dataclass(frozen=True, slots=True)
class Decision:
    """One approver's answer; ``groups`` are the approver's groups when deciding."""

    approver: str
    groups: tuple[str, ...]
    decision: DecisionKind
    reason: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "approver": self.approver,
            "groups": list(self.groups),
            "decision": self.decision,
            "reason": self.reason,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A command waiting for (or past) human approval.

    Times are Unix seconds. ``command`` is exactly the text shown to approvers and
    ``command_digest`` (see :mod:`hoopd.approvals.digest`) the only command the approval
    covers. ``resolved_at`` and ``resolution`` (a sentence such as ``"denied by bob: not
    during business hours"``) are set when the request leaves ``pending``.
    """

    id: str
    created_at: float
    deadline: float
    session_id: str
    requester: str
    requester_groups: tuple[str, ...]
    actor_chain: tuple[str, ...]
    connection: str
    protocol: str
    command: str
    command_digest: str
    rule: str
    approver_groups: tuple[str, ...]
    min_approvals: int
    status: Status
    decisions: tuple[Decision, ...]
    resolved_at: float | None = None
    resolution: str = ""

    @property
    def approvals(self) -> int:
        """How many distinct approvers have approved."""
        return sum(1 for d in self.decisions if d.decision == "approve")

    def to_json(self) -> dict[str, Any]:
        """The request as JSON-ready data: the shape of the admin API and webhooks."""
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "deadline": self.deadline,
            "session_id": self.session_id,
            "requester": self.requester,
            "requester_groups": list(self.requester_groups),
            "actor_chain": list(self.actor_chain),
            "connection": self.connection,
            "protocol": self.protocol,
            "command": self.command,
            "command_digest": self.command_digest,
            "rule": self.rule,
            "approver_groups": list(self.approver_groups),
            "min_approvals": self.min_approvals,
            "approvals": self.approvals,
            "decisions": [d.to_json() for d in self.decisions],
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
        }
