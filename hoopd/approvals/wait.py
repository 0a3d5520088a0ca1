"""Waiting for a request's outcome, in the gateway's session task."""

from __future__ import annotations

import trio

from hoopd.approvals.model import ApprovalError, ApprovalRequest
from hoopd.approvals.store import ApprovalStore


async def wait_for_decision(
    store: ApprovalStore, request_id: str, *, poll_seconds: float = 0.2
) -> ApprovalRequest:
    """Return the request once it is no longer pending.

    Polls the store every ``poll_seconds`` (a decision may come from another process).
    When the request's deadline arrives it is marked expired and returned (unless a
    decision got in first). The deadline is turned into trio time once, at the start,
    and timed with :func:`trio.sleep`, so a trio ``MockClock`` drives it. Cancelling
    the call leaves the request pending: the caller then calls
    :meth:`ApprovalStore.cancel`. Raises :class:`ApprovalError` for an unknown id, and
    ``sqlite3.Error`` if the store cannot be read (the caller then refuses the command).
    """
    request = store.get(request_id)
    if request is None:
        raise ApprovalError("unknown", f"no approval request {request_id!r}")
    deadline = trio.current_time() + max(0.0, request.deadline - store.now())
    while request.status == "pending":
        now = trio.current_time()
        if now >= deadline:
            return store.expire(request.id)
        await trio.sleep(min(poll_seconds, deadline - now))
        current = store.get(request.id)
        if current is None:
            raise ApprovalError("unknown", f"approval request {request.id} has disappeared")
        request = current
    return request
