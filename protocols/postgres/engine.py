"""The PostgreSQL engine: one client session from handshake to close.

Flow: client handshake (TLS, token) -> open the session's recording -> dial the
target with the gateway's credentials -> tell the client it is ready, with a
BackendKeyData of the gateway's own -> the session's two pumps (``pumps.py``) in
one nursery -> the last words to the client and the end of the recording.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import trio

from hoopd.codec import ProtocolError
from hoopd.gateway import Gateway, Listener
from hoopd.live_sessions import SessionEnded, Tracked
from hoopd.pipeline import Session, session_subject
from hoopd.recording.journal import RecorderError, SessionRecorder
from hoopd.relay import ByteStream, SocketByteStream, run_pumps, wait_peer_gone
from hoopd.session_masking import covering_rules
from hoopd.session_records import record_ended, record_refused_login

from . import backend as be
from . import frontend as fe
from . import refusals
from .cancel import CancelRegistry, UpstreamKey, forward_cancel
from .codec import PostgresCodec, Role
from .handshake import CancelHandled, ClientHello, ClientLeg, HandshakeRefused, accept_client
from .masking import MaskingError, ResultMasker, result_masker
from .pumps import SessionEnd, SessionPumps
from .upstream import TargetUnavailable, Upstream, connect_upstream

log = logging.getLogger("hoopd.postgres")

_REPLY_DEADLINE = 5.0


class PostgresEngine:
    """Serves PostgreSQL clients; one instance per gateway process."""

    name = "postgres"

    def __init__(self) -> None:
        self.cancels = CancelRegistry()

    async def serve(
        self, gateway: Gateway, listener: Listener, stream: SocketByteStream, client_addr: str
    ) -> None:
        leg = ClientLeg(stream, PostgresCodec(Role.SERVER, gateway.config.max_message_bytes))
        try:
            await self._serve(gateway, listener, stream, leg, client_addr)
        except Exception:
            log.exception("session from %s failed unexpectedly", client_addr)
        finally:
            with trio.CancelScope(shield=True):
                await leg.stream.aclose()
                await stream.aclose()

    async def _serve(
        self,
        gateway: Gateway,
        listener: Listener,
        raw: SocketByteStream,
        leg: ClientLeg,
        client_addr: str,
    ) -> None:
        async def record_denied(startup: fe.StartupMessage) -> None:
            await self._record_denied(gateway, listener, client_addr, startup)

        try:
            with trio.fail_after(gateway.config.startup_timeout_seconds):
                hello = await accept_client(
                    gateway, listener, raw, leg, client_addr, self.cancels, record_denied
                )
        except trio.TooSlowError:
            log.info("client %s did not finish its startup in time; closed", client_addr)
            return
        except HandshakeRefused as refused:
            log.info("client %s refused: %s", client_addr, refused.reason)
            await _last_words(leg.stream, refused.reply)
            return
        except ProtocolError as exc:
            log.info("client %s sent an invalid startup: %s", client_addr, exc.message)
            await _last_words(leg.stream, refusals.fatal(exc.code, exc.message))
            return
        except (trio.BrokenResourceError, OSError) as exc:
            log.info("client %s went away during startup: %s", client_addr, exc)
            return
        if isinstance(hello, CancelHandled):
            return
        await self._run_session(gateway, leg, hello, client_addr)

    async def _record_denied(
        self, gateway: Gateway, listener: Listener, client_addr: str, startup: fe.StartupMessage
    ) -> None:
        database = startup.get("database") or ""
        await record_refused_login(
            gateway.journal,
            connection=database if listener.connection_named(database) else "",
            protocol=self.name,
            client_addr=client_addr,
            attributes=_client_attributes(startup),
        )
        log.info("client %s presented a token that was not accepted", client_addr)

    async def _run_session(
        self, gateway: Gateway, leg: ClientLeg, hello: ClientHello, client_addr: str
    ) -> None:
        connection = hello.connection
        try:
            recorder = gateway.journal.start_session(
                connection=connection.name,
                protocol=self.name,
                client_addr=client_addr,
                identity=hello.identity.to_record(),
                attributes=_client_attributes(hello.startup) | {"client_tls": leg.tls},
            )
        except RecorderError:
            log.error("recording unavailable; refusing %s", client_addr)
            await _last_words(
                leg.stream,
                refusals.fatal("58030", "session recording is unavailable; try again later"),
            )
            return
        log.info(
            "session %s: %s on %s from %s",
            recorder.session_id,
            hello.identity.subject,
            connection.name,
            client_addr,
        )
        # Stands unless the relay returns: it was cancelled because the gateway stops.
        end = SessionEnd(
            "gateway shutdown",
            refusals.fatal(refusals.ADMIN_SHUTDOWN, "the gateway is shutting down"),
        )
        try:
            with gateway.live.track(
                recorder.session_id, hello.identity, idle_timeout=connection.idle_timeout_seconds
            ) as tracked:
                end = await self._dial_and_relay(
                    gateway, leg, hello, client_addr, recorder, tracked
                )
            if tracked.ended is not None:
                end = await _ended_from_outside(recorder, tracked.ended)
        finally:
            with trio.CancelScope(shield=True):
                await _last_words(leg.stream, end.reply)
                await recorder.close(end.reason)
                log.info("session %s ended: %s", recorder.session_id, end.reason)

    async def _dial_and_relay(
        self,
        gateway: Gateway,
        leg: ClientLeg,
        hello: ClientHello,
        client_addr: str,
        recorder: SessionRecorder,
        tracked: Tracked,
    ) -> SessionEnd:
        connection = hello.connection
        try:
            with trio.fail_after(gateway.config.connect_timeout_seconds):
                upstream = await connect_upstream(
                    connection.name,
                    connection.target,
                    hello.startup.parameters,
                    gateway.target_tls.get(connection.name),
                    gateway.config.max_message_bytes,
                )
        except TargetUnavailable as exc:
            log.warning("session %s: %s", recorder.session_id, exc.message)
            return SessionEnd("target unavailable", refusals.fatal(exc.code, exc.message))
        except trio.TooSlowError:
            message = f'timed out connecting to the target of connection "{connection.name}"'
            return SessionEnd("target unavailable", refusals.fatal("08001", message))
        session = Session(
            recorder.session_id,
            hello.identity,
            connection.name,
            self.name,
            client_addr,
            recorder,
            connection.labels,
            granted_level=hello.granted_level,
        )
        try:
            masker = await _masking_for(gateway, session, upstream)
        except (MaskingError, ProtocolError, ValueError, trio.BrokenResourceError, OSError) as exc:
            log.error("session %s: masking cannot be set up: %s", recorder.session_id, exc)
            await upstream.stream.aclose()
            reply = refusals.fatal(
                refusals.CANNOT_CONNECT_NOW, "hoopd: masking for this session cannot be set up"
            )
            return SessionEnd("masking unavailable", reply)
        key = UpstreamKey(upstream.host, upstream.port, upstream.process_id, upstream.secret)
        process_id, secret = self.cancels.issue(key)
        try:
            await leg.stream.send_all(_ready_messages(upstream, process_id, secret))
            relay = SessionPumps(gateway, session, leg, upstream, masker, tracked.touch)
            session.notify = relay.notify
            session.client_gone = partial(wait_peer_gone, leg.stream)
            await run_pumps(relay.client_to_target, relay.target_to_client)
            return relay.end
        except (trio.BrokenResourceError, OSError):
            return SessionEnd("client disconnected")
        finally:
            self.cancels.release(process_id)
            with trio.CancelScope(shield=True):
                # Revoked (ended is set) or expired (the scope's deadline passed; ended
                # is set only once the scope exits): whatever the target is running
                # for this session stops too, not only the client's view of it.
                if tracked.ending:
                    await _cancel_running(key, recorder.session_id)
                await upstream.stream.aclose()


async def _cancel_running(key: UpstreamKey, session_id: str) -> None:
    try:
        with trio.fail_after(_REPLY_DEADLINE):
            await forward_cancel(key)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        log.warning("session %s: could not cancel its running statement: %s", session_id, exc)


async def _ended_from_outside(recorder: SessionRecorder, ended: SessionEnded) -> SessionEnd:
    """Record why the session was ended from outside (revocation, expiry, idleness)
    and say it to the client as PostgreSQL does when it ends a backend."""
    reason = await record_ended(recorder, ended)
    code = refusals.IDLE_SESSION_TIMEOUT if ended.cause == "idle" else refusals.ADMIN_SHUTDOWN
    return SessionEnd(reason, refusals.fatal(code, f"hoopd: {ended.message}"))


async def _masking_for(
    gateway: Gateway, session: Session, upstream: Upstream
) -> ResultMasker | None:
    """The session's masking state, when the policy's mask rules cover it."""
    policy = gateway.pipeline.policy
    if policy is None:
        return None
    rules = covering_rules(policy, session_subject(session))
    masker = await result_masker(rules, gateway.masking_key, upstream)
    session.copy_out_refused = masker is not None and masker.copy_out_refused
    return masker


def _ready_messages(upstream: Upstream, process_id: int, secret: bytes) -> bytes:
    """AuthenticationOk, the target's parameters, our own key, ReadyForQuery."""
    parts = [be.Authentication(be.AUTH_OK).encode()]
    parts.extend(status.encode() for status in upstream.parameters)
    parts.extend(notice.encode() for notice in upstream.notices)
    parts.append(be.BackendKeyData(process_id, secret).encode())
    parts.append(be.ReadyForQuery("I").encode())
    return b"".join(parts)


def _client_attributes(startup: fe.StartupMessage) -> dict[str, object]:
    """What the client said about itself (never a secret: the token is not in startup)."""
    attributes: dict[str, object] = {
        "client_user": startup.get("user") or "",
        "database": startup.get("database") or "",
    }
    application = startup.get("application_name")
    if application:
        attributes["application_name"] = application
    return attributes


async def _last_words(stream: ByteStream, reply: bytes) -> None:
    """Best effort: tell a departing client why, without waiting long."""
    if not reply:
        return
    with trio.move_on_after(_REPLY_DEADLINE):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.send_all(reply)
