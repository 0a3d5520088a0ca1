"""Routing query cancellation through the gateway.

A client cancels by opening a *new* connection and sending the BackendKeyData it
was given. The gateway gives each client its own random key (so a client learns
nothing about the target's processes) and remembers which upstream backend it
stands for; a CancelRequest with a matching key is forwarded to that backend.
Keys live in this process's memory: a cancel must reach the gateway process that
holds the session.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from hoopd.relay import connect_tcp

from . import frontend as fe


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    host: str
    port: int
    process_id: int
    secret: bytes


class CancelRegistry:
    """Maps the keys handed to clients to the upstream backends they stand for."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[bytes, UpstreamKey]] = {}

    def issue(self, upstream: UpstreamKey) -> tuple[int, bytes]:
        """A fresh (process id, secret) for a client; unique among live sessions."""
        while True:
            process_id = secrets.randbelow(2**31 - 1) + 1
            if process_id not in self._keys:
                break
        secret = secrets.token_bytes(4)
        self._keys[process_id] = (secret, upstream)
        return process_id, secret

    def release(self, process_id: int) -> None:
        self._keys.pop(process_id, None)

    def lookup(self, request: fe.CancelRequest) -> UpstreamKey | None:
        entry = self._keys.get(request.process_id)
        if entry is None or not hmac.compare_digest(entry[0], request.secret):
            return None
        return entry[1]


async def forward_cancel(upstream: UpstreamKey) -> None:
    """Send a CancelRequest to the upstream backend; errors are the caller's to log.

    PostgreSQL reads cancel requests before any TLS or authentication, so a plain
    connection is enough and no credentials are involved.
    """
    stream = await connect_tcp(upstream.host, upstream.port)
    try:
        await stream.send_all(fe.CancelRequest(upstream.process_id, upstream.secret).encode())
        # The server closes without answering; wait for that so the request is read.
        await stream.receive_some()
    finally:
        await stream.aclose()
