"""The sessions this gateway process is serving now, and ending them when their token
is revoked or expires, or when they have been idle too long.

A protocol engine runs each session inside :meth:`LiveSessions.track`. The context
gives the session a cancel scope: when the session's token (or any token it was
derived from, or its subject, or an actor in its chain) is revoked, the token
expires, or nothing has passed either way for the connection's idle timeout, the
scope is cancelled and :attr:`Tracked.ended` says why, so the engine can tell the
client in its protocol and record it. Revocations arrive through
:meth:`LiveSessions.end_revoked`, which the gateway calls whenever the revocation
doorbell rings (hoopd.revocation_bus); no session polls. Idleness is checked by
one task for the whole process (:func:`end_idle_sessions`), every
:data:`IDLE_CHECK_SECONDS`: engines only note the time of each chunk they carry
(:meth:`Tracked.touch`), so the check costs the data path one clock read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from hoopd.identity.base import Identity
from hoopd.revocation_bus import RevocationDoorbell

log = logging.getLogger("hoopd.sessions")

RETRY_SECONDS = 0.5
"""How soon a revocation check that could not read the store is tried again."""

IDLE_CHECK_SECONDS = 0.5
"""How often idle sessions are looked for: a session ends at most this late."""


class RevocationSource(Protocol):
    """What revoked an identity, if anything (the token store): a clause such as
    ``token gt:abc was revoked by alice: leaked``."""

    def revocation_reason(self, identity: Identity) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """Why a live session was ended from outside: ``"revoked"``, ``"expired"`` or
    ``"idle"``, and a sentence for the client and the audit record."""

    cause: str
    message: str


@dataclass(slots=True)
class Tracked:
    """One live session: its identity, its cancel scope, and (once ended) why."""

    session_id: str
    identity: Identity
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: SessionEnded | None = None
    #: Seconds without a chunk either way after which the session ends (0: never).
    idle_timeout: float = 0.0
    #: When the last chunk passed (trio's clock).
    last_active: float = 0.0

    def touch(self) -> None:
        """A chunk passed, from the client or from the target."""
        self.last_active = trio.current_time()

    @property
    def ending(self) -> bool:
        """Ended from outside: revoked, or the token's expiry passed. True as soon as
        the scope is cancelled (``ended`` is set for expiry only once it exits)."""
        return self.scope.cancel_called

    def end(self, ended: SessionEnded) -> None:
        if self.ended is None:
            self.ended = ended
            self.scope.cancel()


class LiveSessions:
    """Every live session of this process, by session id."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._sessions: dict[str, Tracked] = {}
        self._wall_clock = wall_clock
        #: End a session when its token expires (``[identity] end_sessions_at_expiry``).
        self.end_at_expiry = True

    def __len__(self) -> int:
        return len(self._sessions)

    @contextmanager
    def track(
        self, session_id: str, identity: Identity, *, idle_timeout: float = 0.0
    ) -> Iterator[Tracked]:
        """Run the session's body inside the yielded ``Tracked.scope``.

        When the token expires (if :attr:`end_at_expiry`) or is revoked, or (with an
        ``idle_timeout``) the body has not called ``touch`` for that long, the scope
        is cancelled and ``ended`` is set; the body must then check ``ended``.
        """
        tracked = Tracked(session_id, identity, idle_timeout=idle_timeout)
        tracked.touch()
        if self.end_at_expiry and identity.expires_at is not None:
            # The scope's deadline is on trio's clock; the token's expiry is wall time.
            remaining = identity.expires_at - self._wall_clock()
            tracked.scope.deadline = trio.current_time() + max(remaining, 0.0)
        self._sessions[session_id] = tracked
        try:
            with tracked.scope:
                yield tracked
            if tracked.scope.cancelled_caught and tracked.ended is None:
                tracked.ended = SessionEnded(
                    "expired", "the token of this session expired; connect again with a new one"
                )
        finally:
            del self._sessions[session_id]

    def end_revoked(self, source: RevocationSource) -> tuple[int, int]:
        """End every live session whose identity ``source`` says is revoked; returns
        how many were ended and for how many the lookup failed (logged; those go on
        until a later call succeeds)."""
        ended = failed = 0
        for tracked in list(self._sessions.values()):
            if tracked.ended is not None:
                continue
            try:
                reason = source.revocation_reason(tracked.identity)
            except Exception:
                log.exception("could not check session %s for revocation", tracked.session_id)
                failed += 1
                continue
            if reason is not None:
                log.warning("session %s: token revoked (%s); ending it", tracked.session_id, reason)
                tracked.end(SessionEnded("revoked", f"session ended because {reason}"))
                ended += 1
        return ended, failed

    def end_idle(self) -> int:
        """End every live session idle for its timeout or longer; returns how many."""
        now = trio.current_time()
        ended = 0
        for tracked in list(self._sessions.values()):
            timeout = tracked.idle_timeout
            if timeout <= 0 or tracked.ended is not None or now - tracked.last_active < timeout:
                continue
            log.info("session %s: idle for %g s; ending it", tracked.session_id, timeout)
            message = (
                f"session ended after {timeout:g} seconds without activity (idle timeout);"
                " connect again to go on"
            )
            tracked.end(SessionEnded("idle", message))
            ended += 1
        return ended


async def end_idle_sessions(live: LiveSessions) -> None:
    """Until cancelled: end idle sessions (:meth:`LiveSessions.end_idle`)."""
    while True:
        await trio.sleep(IDLE_CHECK_SECONDS)
        live.end_idle()


async def end_sessions_on_revocation(
    store_dir: Path,
    live: LiveSessions,
    source: RevocationSource,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: whenever a revocation is announced for the store in
    ``store_dir``, end the live sessions it covers. Started with ``nursery.start``,
    it reports started once the doorbell is open, so no announcement made after
    that is missed. Raises ``OSError`` at start if the doorbell cannot be opened."""
    doorbell = RevocationDoorbell(store_dir)
    try:
        task_status.started()
        while True:
            await doorbell.wait()
            # A store that cannot be read now (locked past its timeout) is asked again
            # until it answers: a revocation must not be lost to a busy moment.
            while live.end_revoked(source)[1]:
                await trio.sleep(RETRY_SECONDS)
    finally:
        doorbell.close()
