"""The admin API on the wire: HTTP/1.1 with h11, one request per connection.

Limits, so no client can hold the gateway's resources: a request head of at most
16 KiB and 64 header fields, a body of at most 64 KiB, 10 seconds from the start of
serving a connection to the end of its response, and 64 connections served at a time
(more wait their turn). Every response closes its connection. A fault while answering
costs that request a 500, never the gateway. The listener is plain HTTP, so the
configuration only accepts loopback addresses for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Final

import h11
import trio

from hoopd.approvals.api import AdminApi, ApiRequest, ApiResponse, Route, error
from hoopd.approvals.store import ApprovalStore
from hoopd.identity.base import TokenVerifier

log = logging.getLogger("hoopd.approvals")

MAX_HEAD_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 64
MAX_BODY_BYTES: Final = 64 * 1024
REQUEST_DEADLINE_SECONDS: Final = 10.0
MAX_CONNECTIONS: Final = 64
_RECEIVE_BYTES: Final = 16 * 1024
_LINGER_SECONDS: Final = 1.0


async def serve_admin_api(
    store: ApprovalStore,
    verifier: TokenVerifier,
    host: str,
    port: int,
    routes: Sequence[Route] = (),
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin API on ``host:port`` until cancelled.

    ``task_status.started`` receives the bound port (the chosen one when ``port`` is 0),
    so ``await nursery.start(serve_admin_api, ...)`` returns once requests are accepted.
    """
    api = AdminApi(store, verifier, routes)
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    limiter = trio.CapacityLimiter(MAX_CONNECTIONS)
    log.info("admin API listening on %s:%d", host, bound)
    task_status.started(bound)

    async def on_connection(stream: trio.SocketStream) -> None:
        async with limiter:
            await serve_connection(api, stream)

    await trio.serve_listeners(on_connection, listeners)


async def serve_connection(api: AdminApi, stream: trio.SocketStream) -> None:
    """Read one request, answer it, close. Never raises for a client's behaviour."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        with trio.move_on_after(REQUEST_DEADLINE_SECONDS) as scope:
            received = await _receive(conn, stream)
            if received is not None:
                response = (
                    await _answer(api, received) if isinstance(received, ApiRequest) else received
                )
                await _send(conn, stream, response)
                await _linger(stream)
        if scope.cancelled_caught:
            with trio.move_on_after(_LINGER_SECONDS):
                await _send(conn, stream, error(408, "the request took too long"))
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        pass  # the client went away, or an answer is no longer possible
    finally:
        await trio.aclose_forcefully(stream)


async def _answer(api: AdminApi, request: ApiRequest) -> ApiResponse:
    try:
        return await api.handle(request)
    except Exception:
        # A fault here must cost one request, not the gateway serving it.
        log.exception("admin API: failed to answer %s %s", request.method, request.target)
        return error(500, "internal error; the gateway's log has the details")


async def _receive(
    conn: h11.Connection, stream: trio.SocketStream
) -> ApiRequest | ApiResponse | None:
    """The complete request; a response refusing it; None if the client left first."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return error(exc.error_status_hint, f"malformed HTTP request: {exc}")
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(_RECEIVE_BYTES))
        elif isinstance(event, h11.Request):
            if len(event.headers) > MAX_HEADERS:
                return error(431, f"more than {MAX_HEADERS} header fields")
            # h11 bounds only an incomplete head, so one that arrived whole is measured here.
            if _head_size(event) > MAX_HEAD_BYTES:
                return error(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes")
            length = _content_length(event)
            if length is not None and length > MAX_BODY_BYTES:
                return error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                return error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return ApiRequest(
                method=head.method.decode("ascii"),
                target=head.target.decode("ascii", "replace"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers],
                body=bytes(body),
            )
        else:  # ConnectionClosed, or nothing more to read
            return None


def _head_size(request: h11.Request) -> int:
    """The size of the request head as sent, give or take optional whitespace."""
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers) + 2


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is a number
    return None


async def _send(conn: h11.Connection, stream: trio.SocketStream, response: ApiResponse) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = response.encoded()
    headers = [
        ("content-type", "application/json; charset=utf-8"),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
        ("connection", "close"),
        *response.headers,
    ]
    reason = HTTPStatus(response.status).phrase.encode("ascii")
    out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
    out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def _linger(stream: trio.SocketStream) -> None:
    """Half-close, then read briefly before closing: closing with unread request bytes
    (a refused oversized body) would reset the connection and could destroy the
    response before the client reads it."""
    await stream.send_eof()
    with trio.move_on_after(_LINGER_SECONDS):
        for _ in range(MAX_BODY_BYTES // _RECEIVE_BYTES + 1):
            if not await stream.receive_some(_RECEIVE_BYTES):
                break
