"""Running the gateway: listeners, sessions, signals.

``serve`` binds every listener before it reports ready, runs one task per client
connection in a single nursery, and on SIGTERM/SIGINT stops accepting, ends live
sessions (each tells its client and closes its recording) and returns.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator

import trio

from hoopd.approval_stage import ApprovalStage
from hoopd.approvals.server import serve_admin_api
from hoopd.approvals.store import ApprovalStore
from hoopd.blast_radius_api import blast_radius_route
from hoopd.config import ConnectionConfig, GatewayConfig, approval_store_dir, check_secrets
from hoopd.gateway import Gateway, Listener, ProtocolEngine, load_plugins
from hoopd.identity.authenticator import Authenticator
from hoopd.live_sessions import end_idle_sessions, end_sessions_on_revocation
from hoopd.pipeline import Pipeline
from hoopd.policy.errors import PolicyError
from hoopd.policy_reload import PolicyReloader
from hoopd.recording.journal import Journal
from hoopd.relay import SocketByteStream
from hoopd.session_masking import load_key
from hoopd.tlsconfig import client_leg_certificate, client_leg_context, target_leg_context
from hoopd.tokens.api import token_routes
from hoopd.tokens.keys import KeyStoreError
from hoopd.trust import Trust, open_trust

log = logging.getLogger("hoopd")

LISTEN_BACKLOG = 512


class StartupError(Exception):
    """The gateway cannot start; the message says why, for the operator."""


def group_listeners(config: GatewayConfig) -> list[Listener]:
    """One listener per distinct listen address, with the connections it serves."""
    groups: dict[tuple[str, int], list[ConnectionConfig]] = defaultdict(list)
    for connection in config.connections:
        groups[(connection.listen_host, connection.listen_port)].append(connection)
    listeners = []
    for (host, port), connections in groups.items():
        protocols = {c.protocol for c in connections}
        if len(protocols) != 1:
            raise StartupError(f"{host}:{port} is shared by connections of different protocols")
        listeners.append(Listener(host, port, protocols.pop(), tuple(connections)))
    return listeners


def bind(listener: Listener) -> socket.socket:
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listener.host, listener.port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {listener.host}:{listener.port}: {exc.strerror}"
        ) from exc
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def format_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def accept_loop(
    nursery: trio.Nursery,
    gateway: Gateway,
    engine: ProtocolEngine,
    listener: Listener,
    sock: socket.socket,
) -> None:
    """Accept clients forever; each gets its own task in ``nursery``."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            client, address = sock.accept()
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:  # e.g. EMFILE: back off instead of spinning
            log.error("accept on %s:%s failed: %s", listener.host, listener.port, exc)
            await trio.sleep(0.1)
            continue
        nursery.start_soon(
            engine.serve, gateway, listener, SocketByteStream(client), format_address(address)
        )


def build_gateway(config: GatewayConfig, journal: Journal, authenticator: Authenticator) -> Gateway:
    problems = check_secrets(config)
    if problems:
        raise StartupError("\n".join(problems))
    certificate = client_leg_certificate(config)
    if certificate.generated:
        log.warning("generated a self-signed certificate for clients: %s", certificate.cert_file)
    client_tls = client_leg_context(config, certificate)
    target_tls = {c.name: target_leg_context(c.target) for c in config.connections}
    return Gateway(
        config=config,
        journal=journal,
        authenticator=authenticator,
        pipeline=Pipeline(),
        client_tls=client_tls,
        target_tls=target_tls,
        masking_key=_masking_key(config),
    )


def _masking_key(config: GatewayConfig) -> bytes:
    try:
        return load_key(config.data_dir)
    except (OSError, ValueError) as exc:
        raise StartupError(f"the masking key in {config.data_dir} is unusable: {exc}") from exc


async def serve(
    config: GatewayConfig,
    on_ready: Callable[[list[Listener]], None] | None = None,
    *,
    task_status: trio.TaskStatus[list[Listener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until cancelled or sent SIGTERM/SIGINT.

    Raises ``StartupError`` before anything listens if the configuration cannot
    be served (secrets missing, address in use, unknown protocol).
    """
    listeners = group_listeners(config)
    plugins = load_plugins({listener.protocol for listener in listeners})
    for listener in listeners:
        if listener.protocol not in plugins:
            raise StartupError(f"no engine installed for protocol {listener.protocol!r}")
    journal = Journal.open(config.data_dir, config.recording.durability)
    sockets: list[socket.socket] = []
    try:
        with _trust(config) as trust:
            await _serve_with(
                config, journal, trust, listeners, plugins, sockets, on_ready, task_status
            )
    finally:
        for sock in sockets:
            sock.close()
        journal.close()


async def _serve_with(
    config: GatewayConfig,
    journal: Journal,
    trust: Trust,
    listeners: list[Listener],
    plugins: dict[str, ProtocolEngine],
    sockets: list[socket.socket],
    on_ready: Callable[[list[Listener]], None] | None,
    task_status: trio.TaskStatus[list[Listener]],
) -> None:
    approvals: ApprovalStore | None = None
    try:
        gateway = build_gateway(config, journal, trust.authenticator)
        _prepare_engines(plugins, gateway)
        gateway.live.end_at_expiry = config.identity.end_sessions_at_expiry
        approvals = _open_approvals(config)
        reloader = _policy_reloader(config, gateway.pipeline)
        for listener in listeners:
            sockets.append(bind(listener))  # closed below even if a later bind fails
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await _start_revocation_watch(nursery, trust, gateway)
            if any(c.idle_timeout_seconds > 0 for c in config.connections):
                nursery.start_soon(end_idle_sessions, gateway.live)
            await _start_approvals(nursery, config, gateway, approvals, trust)
            if reloader is not None:
                nursery.start_soon(reloader.watch)
            for listener, sock in zip(listeners, sockets, strict=True):
                nursery.start_soon(
                    accept_loop, nursery, gateway, plugins[listener.protocol], listener, sock
                )
                log.info(
                    "listening on %s:%s for %s",
                    listener.host,
                    listener.port,
                    ", ".join(c.name for c in listener.connections),
                )
            # Signals are handled before anyone is told we are ready.
            await nursery.start(_stop_on_signal, nursery.cancel_scope, reloader)
            if on_ready is not None:
                on_ready(listeners)
            task_status.started(listeners)
    finally:
        if approvals is not None:
            approvals.close()


def _prepare_engines(plugins: dict[str, ProtocolEngine], gateway: Gateway) -> None:
    """Let engines that keep state on disk (the SSH host key) set it up before
    anything listens: an optional ``prepare(gateway)`` method."""
    for engine in plugins.values():
        prepare = getattr(engine, "prepare", None)
        if prepare is None:
            continue
        try:
            prepare(gateway)
        except (OSError, ValueError) as exc:
            raise StartupError(f"the {engine.name} engine cannot start: {exc}") from exc


@contextlib.contextmanager
def _trust(config: GatewayConfig) -> Iterator[Trust]:
    with contextlib.ExitStack() as stack:
        try:
            trust = stack.enter_context(open_trust(config))
        except (OSError, sqlite3.Error, KeyStoreError) as exc:
            raise StartupError(f"the token store or signing keys cannot be used: {exc}") from exc
        yield trust


async def _start_revocation_watch(nursery: trio.Nursery, trust: Trust, gateway: Gateway) -> None:
    try:
        await nursery.start(end_sessions_on_revocation, trust.store_dir, gateway.live, trust.store)
    except OSError as exc:
        raise StartupError(
            f"cannot watch {trust.store_dir} for revocations ({exc}); live sessions of a"
            " revoked token could not be ended, so the gateway does not start"
        ) from exc


def _open_approvals(config: GatewayConfig) -> ApprovalStore:
    try:
        return ApprovalStore.open(approval_store_dir(config))
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(
            f"the approval store in {approval_store_dir(config)} cannot be opened: {exc}"
        ) from exc


async def _start_approvals(
    nursery: trio.Nursery,
    config: GatewayConfig,
    gateway: Gateway,
    store: ApprovalStore,
    trust: Trust,
) -> None:
    """Let commands wait for approval, and serve the admin API when configured."""
    gateway.pipeline.approvals = ApprovalStage(store, config.approvals, nursery)
    listen = config.approvals.admin_listen
    if listen is not None:
        host, port = listen
        routes = [*token_routes(trust.service), blast_radius_route(config, gateway.pipeline)]
        await nursery.start(serve_admin_api, store, gateway.authenticator, host, port, routes)


def _policy_reloader(config: GatewayConfig, pipeline: Pipeline) -> PolicyReloader | None:
    directory = config.policy.directory
    if directory is None:
        log.warning("no [policy] directory configured: every command is let through (recorded)")
        return None
    try:
        return PolicyReloader(directory, pipeline)
    except PolicyError as exc:
        raise StartupError("the policy did not load:\n" + "\n".join(exc.problems)) from exc


async def _stop_on_signal(
    scope: trio.CancelScope,
    reloader: PolicyReloader | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGHUP:
                if reloader is None:
                    log.info("SIGHUP: no policy directory configured; nothing to reload")
                else:
                    reloader.reload("SIGHUP")
                continue
            log.info("%s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
