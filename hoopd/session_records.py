"""Records every protocol engine writes the same way.

A refused login is a session of its own (``auth`` denied, end reason ``token
rejected``), so attempts with bad tokens are in the audit trail; a live session
ended from outside (its token revoked or expired) says why in a record of that
kind. Neither raises: a recorder that cannot write is logged, and the engine goes
on refusing or ending as it would.
"""

from __future__ import annotations

import logging
from typing import Any

from hoopd.live_sessions import SessionEnded
from hoopd.recording.journal import Journal, RecorderError, SessionRecorder

log = logging.getLogger("hoopd")

#: The session's end reason (``hoopd sessions``) for each way of ending it from outside.
_END_REASONS = {"revoked": "token revoked", "expired": "token expired", "idle": "idle timeout"}


async def record_refused_login(
    journal: Journal,
    *,
    connection: str,
    protocol: str,
    client_addr: str,
    attributes: dict[str, Any],
) -> None:
    """Record a login whose token was not accepted (``connection`` is "" when the
    client named none that exists)."""
    try:
        recorder = journal.start_session(
            connection=connection,
            protocol=protocol,
            client_addr=client_addr,
            identity=None,
            attributes=attributes,
        )
    except RecorderError:
        log.error("could not record a refused login from %s", client_addr)
        return
    try:
        await recorder.append([("auth", {"outcome": "denied"})])
    except RecorderError:
        log.error("could not record a refused login from %s", client_addr)
    await recorder.close("token rejected")


async def record_ended(recorder: SessionRecorder, ended: SessionEnded) -> str:
    """Record why a live session was ended from outside; returns its end reason."""
    try:
        await recorder.append([(ended.cause, {"message": ended.message})])
    except RecorderError:
        log.error("session %s: could not record that it was %s", recorder.session_id, ended.cause)
    return _END_REASONS.get(ended.cause, ended.cause)
