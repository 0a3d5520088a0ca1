"""The pipeline's approval stage: hold a command until people decide on it.

For a command whose verdict is ``approve``: open a request in the shared store,
tell the client at once (in its own protocol) which request it waits on and how to
approve it, notify the webhook, and wait. The command goes on only if the request is
approved, and only that command: the request is bound to its text, parameters,
connection and protocol. Denied, expired, or not possible (the store cannot be
written) -> a refusal; the client going away cancels the request.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from hoopd.approvals.digest import command_digest
from hoopd.approvals.model import ApprovalError, ApprovalRequest
from hoopd.approvals.store import ApprovalStore
from hoopd.approvals.wait import wait_for_decision
from hoopd.approvals.webhook import announce
from hoopd.config import ApprovalsConfig
from hoopd.identity.base import Identity
from hoopd.policy.verdict import Verdict

if TYPE_CHECKING:
    from hoopd.pipeline import Command

log = logging.getLogger("hoopd.approvals")

#: Sends one notice to the waiting client; set by the protocol engine.
Notify = Callable[[str], Awaitable[None]]
#: Returns once the client has gone away; set by the protocol engine.
ClientGone = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Held:
    """How holding a command ended: ``approved``, and what goes into its record."""

    approved: bool
    message: str
    record: dict[str, Any]


class ApprovalStage:
    """Opens, announces and waits on approval requests; one per gateway process."""

    def __init__(
        self, store: ApprovalStore, config: ApprovalsConfig, background: trio.Nursery
    ) -> None:
        self.store = store
        self.config = config
        # Webhooks run here, so a slow receiver never delays a decision.
        self._background = background

    async def hold(
        self,
        *,
        session_id: str,
        identity: Identity,
        connection: str,
        protocol: str,
        command: Command,
        verdict: Verdict,
        notify: Notify,
        client_gone: ClientGone,
    ) -> Held:
        """Wait for the decision on ``command``; cancelled with the session, and given
        up (the request cancelled) when the client goes away meanwhile."""
        seconds = verdict.deadline_seconds or self.config.default_deadline_seconds
        try:
            request = self.store.create(
                session_id=session_id,
                requester=identity.subject,
                requester_groups=identity.groups,
                actor_chain=identity.actor_chain,
                connection=connection,
                protocol=protocol,
                command=command.text,
                command_digest=command_digest(protocol, connection, command.text, command.params),
                rule=verdict.rule or "",
                approver_groups=verdict.approvers,
                min_approvals=verdict.min_approvals,
                deadline=time.time() + seconds,
            )
        except (ValueError, sqlite3.Error) as exc:
            log.error("session %s: approval request not opened: %s", session_id, exc)
            return Held(False, "this statement needs approval, which cannot be requested now", {})
        self._announce("approval.requested", request)
        await notify(_waiting_message(request))
        try:
            outcome = await _decision_or_departure(self.store, request.id, client_gone)
        except (ApprovalError, sqlite3.Error) as exc:
            log.error("session %s: approval %s unreadable: %s", session_id, request.id, exc)
            return Held(False, f"approval request {request.id} could not be read", {})
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                self._cancel(request.id)
            raise
        if outcome is None:
            self._cancel(request.id)
            log.info("session %s: client left while approval %s was open", session_id, request.id)
            return Held(False, "the client went away", {"id": request.id, "status": "cancelled"})
        self._announce("approval.decided", outcome)
        record = {
            "id": outcome.id,
            "status": outcome.status,
            "requested_at": outcome.created_at,
            "decisions": [decision.to_json() for decision in outcome.decisions],
        }
        if outcome.status == "approved":
            return Held(True, "", record)
        return Held(False, _refusal_message(outcome), record)

    def _cancel(self, request_id: str) -> None:
        try:
            self.store.cancel(request_id, "the client went away")
        except (ApprovalError, sqlite3.Error) as exc:
            log.warning("approval %s not cancelled: %s", request_id, exc)

    def _announce(self, event: Any, request: ApprovalRequest) -> None:
        if self.config.webhook_url:
            self._background.start_soon(announce, self.config, event, request)


async def _decision_or_departure(
    store: ApprovalStore, request_id: str, client_gone: ClientGone
) -> ApprovalRequest | None:
    """The decided request, or None if the client went away first."""
    outcome: ApprovalRequest | None = None
    async with trio.open_nursery() as nursery:

        async def decide() -> None:
            nonlocal outcome
            outcome = await wait_for_decision(store, request_id)
            nursery.cancel_scope.cancel()

        async def watch() -> None:
            await client_gone()
            nursery.cancel_scope.cancel()

        nursery.start_soon(decide)
        nursery.start_soon(watch)
    return outcome


def _waiting_message(request: ApprovalRequest) -> str:
    groups = ", ".join(request.approver_groups)
    deadline = time.strftime("%H:%M:%S UTC", time.gmtime(request.deadline))
    return (
        f"hoopd: this statement needs approval (request {request.id}, rule "
        f'"{request.rule}"). Someone in {groups} approves it with: hoopd approve '
        f"{request.id}. Waiting until {deadline}."
    )


def _refusal_message(request: ApprovalRequest) -> str:
    if request.status == "denied":
        return f"approval request {request.id} was {request.resolution or 'denied'}"
    if request.status == "expired":
        return f"approval request {request.id} expired before anyone decided"
    return f"approval request {request.id} was {request.status}"
