"""What every protocol engine gets from the gateway, and how engines are found.

Engines are plugins registered under the ``hoopd.protocols`` entry-point group
and resolved once at start (:func:`load_plugins`); nothing registers itself by
mutating a global at import time.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol

from hoopd.config import ConnectionConfig, GatewayConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.live_sessions import LiveSessions
from hoopd.pipeline import Pipeline
from hoopd.recording.journal import Journal
from hoopd.relay import SocketByteStream

log = logging.getLogger("hoopd")


@dataclass(slots=True)
class Gateway:
    """Shared, long-lived state of a running gateway process."""

    config: GatewayConfig
    journal: Journal
    authenticator: Authenticator
    pipeline: Pipeline
    client_tls: ssl.SSLContext
    target_tls: Mapping[str, ssl.SSLContext | None] = field(default_factory=dict)
    #: Keys the ``hmac`` masking style (see hoopd.session_masking.load_key).
    masking_key: bytes = b""
    #: The sessions being served now, so revocation can end them.
    live: LiveSessions = field(default_factory=LiveSessions)


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening address and the connections reachable through it."""

    host: str
    port: int
    protocol: str
    connections: tuple[ConnectionConfig, ...]

    def connection_named(self, name: str) -> ConnectionConfig | None:
        for connection in self.connections:
            if connection.name == name:
                return connection
        return None


class ProtocolEngine(Protocol):
    """A protocol plugin: accepts one client connection and serves it to the end.

    ``serve`` owns ``stream`` and must close it; it must never raise for anything a
    client or target does (log, tell the client in its protocol, return).
    """

    name: str

    async def serve(
        self, gateway: Gateway, listener: Listener, stream: SocketByteStream, client_addr: str
    ) -> None: ...


def load_plugins(protocols: Collection[str]) -> dict[str, ProtocolEngine]:
    """The installed engines for ``protocols``, by protocol name (a protocol with no
    engine installed is left out; the caller says so). Engines for protocols the
    configuration does not use are not imported."""
    plugins: dict[str, ProtocolEngine] = {}
    for entry in entry_points(group="hoopd.protocols"):
        if entry.name in protocols:
            plugins[entry.name] = entry.load()
    return plugins
