"""The SSH engine: one client connection from SSH handshake to close.

Flow: the accepted socket is handed from trio to asyncssh (detached from its
trio-side owner first, so exactly one side ever closes it) -> SSH handshake with
hoopd's own host key, the client logged in with a token as its password or a key
bound to an identity or certified by hoopd's SSH CA (:mod:`.auth`) -> the
session's recording opens -> inside ``gateway.live.track`` the target is dialled
(:mod:`.upstream`) -> each session channel the client opens is served by
:mod:`.channel` -> the session ends when the client or the target leaves,
recording fails, the token is revoked or expires, nothing passes for the
connection's idle timeout, or the gateway stops; the client is then told why
(:mod:`.ending`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import asyncssh
import trio

from hoopd.gateway import Gateway, Listener
from hoopd.masking import Masker
from hoopd.pipeline import Session, session_subject
from hoopd.recording.journal import RecorderError, SessionRecorder
from hoopd.relay import SocketByteStream
from hoopd.session_masking import covering_rules

from .auth import Accepted, GatewayServer
from .bridge import open_loop, to_trio
from .ending import (
    LAST_WORDS_SECONDS,
    RECORDING_FAILED,
    End,
    ended_from_outside,
    first_end,
    last_words,
)
from .handshake import Pending, accept
from .hostkey import host_key_path, load_or_create_host_key
from .link import Link
from .process import ChannelProcess
from .upstream import TargetUnavailable, dial

log = logging.getLogger("hoopd.ssh")


class SshEngine:
    """Serves SSH clients; one instance per gateway process."""

    name = "ssh"

    def __init__(self) -> None:
        self._host_keys: dict[Path, asyncssh.SSHKey] = {}

    def host_key(self, data_dir: Path) -> asyncssh.SSHKey:
        key = self._host_keys.get(data_dir)
        if key is None:
            key = self._host_keys[data_dir] = load_or_create_host_key(data_dir)
        return key

    def prepare(self, gateway: Gateway) -> None:
        """At gateway start: load (or generate, the first time) the host key, and say
        which it is, so operators can give clients its fingerprint."""
        if gateway.config.log_level.lower() != "debug":
            # asyncssh logs every channel request at INFO; hoopd logs what matters.
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        key = self.host_key(gateway.config.data_dir)
        log.info(
            "SSH host key %s (%s)",
            key.get_fingerprint("sha256"),
            host_key_path(gateway.config.data_dir),
        )

    async def serve(
        self, gateway: Gateway, listener: Listener, stream: SocketByteStream, client_addr: str
    ) -> None:
        raw = stream.socket
        sock = socket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
        await stream.aclose()  # closes nothing now: asyncio owns the descriptor
        try:
            async with open_loop():
                await self._serve(gateway, listener, sock, client_addr)
        except Exception:
            log.exception("session from %s failed unexpectedly", client_addr)
        finally:
            sock.close()

    async def _serve(
        self, gateway: Gateway, listener: Listener, sock: socket.socket, client_addr: str
    ) -> None:
        try:
            key = self.host_key(gateway.config.data_dir)
        except (OSError, asyncssh.KeyImportError) as exc:
            log.error("the gateway's SSH host key is unusable (%s); refusing %s", exc, client_addr)
            return
        pending = Pending()
        server = GatewayServer(
            gateway,
            listener,
            client_addr,
            lambda: ChannelProcess(pending.channel),
            pending.forward,
            pending.remote_forward,
        )
        try:
            conn = await to_trio(accept)(sock, server, key, gateway.config.startup_timeout_seconds)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            log.info("client %s: no SSH session (%s)", client_addr, _describe(exc))
            return
        try:
            assert server.accepted is not None  # run_server returns once auth succeeded
            await self._session(gateway, conn, server.accepted, client_addr, pending)
        finally:
            pending.settled.set()

    async def _session(
        self,
        gateway: Gateway,
        conn: asyncssh.SSHServerConnection,
        accepted: Accepted,
        client_addr: str,
        pending: Pending,
    ) -> None:
        connection = accepted.selected.connection
        try:
            recorder = gateway.journal.start_session(
                connection=connection.name,
                protocol=self.name,
                client_addr=client_addr,
                identity=accepted.identity.to_record(),
                attributes={
                    "client_user": accepted.username,
                    "login": accepted.selected.login,
                    "client_version": str(conn.get_extra_info("client_version", "")),
                },
            )
        except RecorderError:
            log.error("recording unavailable; refusing %s", client_addr)
            message = "session recording is unavailable; try again later"
            await last_words(conn, message, pending.open)
            return
        log.info(
            "session %s: %s on %s as %s from %s",
            recorder.session_id,
            accepted.identity.subject,
            connection.name,
            accepted.selected.login,
            client_addr,
        )
        # Stands unless the session returns: it was cancelled because the gateway stops.
        end = End("gateway shutdown", "the gateway is shutting down")
        try:
            with gateway.live.track(
                recorder.session_id,
                accepted.identity,
                idle_timeout=connection.idle_timeout_seconds,
            ) as tracked:
                end = await self._run(
                    gateway, conn, accepted, client_addr, recorder, pending, tracked.touch
                )
            if tracked.ended is not None:
                end = await ended_from_outside(recorder, tracked.ended)
        finally:
            pending.settled.set()
            with trio.CancelScope(shield=True):
                await last_words(conn, end.message, pending.open)
                await recorder.close(end.reason)
                log.info("session %s ended: %s", recorder.session_id, end.reason)

    async def _run(
        self,
        gateway: Gateway,
        conn: asyncssh.SSHServerConnection,
        accepted: Accepted,
        client_addr: str,
        recorder: SessionRecorder,
        pending: Pending,
        activity: Callable[[], None],
    ) -> End:
        connection, identity = accepted.selected.connection, accepted.identity
        try:
            upstream = await to_trio(dial)(
                connection, accepted.selected.login, gateway.config.connect_timeout_seconds
            )
        except TargetUnavailable as exc:
            log.warning("session %s: %s (%s)", recorder.session_id, exc.message, exc.detail or "-")
            return End("target unavailable", exc.message)
        session = Session(
            recorder.session_id,
            identity,
            connection.name,
            self.name,
            client_addr,
            recorder,
            connection.labels,
            granted_level=accepted.granted_level,
        )
        link = pending.link = Link(
            gateway,
            session,
            upstream,
            masker=_output_masker(gateway, session),
            activity=activity,
            announce=pending.announce,
        )
        pending.settled.set()
        end: End | None = None
        try:
            end = await first_end(conn, link)
            return end
        finally:
            # Revoked, expired, the gateway stops (cancelled: no end), or recording failed.
            if end is None or end is RECORDING_FAILED:
                link.end()
            upstream.close()
            with trio.CancelScope(shield=True), trio.move_on_after(LAST_WORDS_SECONDS):
                await to_trio(upstream.wait_closed)()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__


def _output_masker(gateway: Gateway, session: Session) -> Masker | None:
    """A masker of the detector rules that cover ``session`` (column rules have no
    columns to name in a byte stream), or None when there are none."""
    policy = gateway.pipeline.policy
    if policy is None:
        return None
    rules = [rule for rule in covering_rules(policy, session_subject(session)) if rule.detectors]
    return Masker(rules, gateway.masking_key) if rules else None
