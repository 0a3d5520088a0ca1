"""Hostile or broken clients on the gateway's listener.

Each gets its connection closed (with an ErrorResponse where the protocol allows
one), within the startup deadline at the latest, while a session opened before
the abuse and new sessions opened after it keep working, and the gateway process
stays up.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support.gateway import Gateway, running_gateway, unique_marker
from tests.support.pgserver import PgServer
from tests.support.pgwire import (
    RawConnection,
    WireError,
    client_tls_context,
    parse_error_fields,
    ssl_request,
    startup_message,
)

STARTUP_TIMEOUT = 1.0
CLOSE_DEADLINE = STARTUP_TIMEOUT + 4.0


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(
        pg, tmp_path_factory.mktemp("gw-robust"), startup_timeout_seconds=STARTUP_TIMEOUT
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def bystander(gw: Gateway) -> Iterator[psycopg.Connection[Any]]:
    """A session opened before the abuse, used after each test."""
    with gw.connect() as conn:
        yield conn


@pytest.fixture(autouse=True)
def others_unaffected(
    gw: Gateway, pg: PgServer, bystander: psycopg.Connection[Any]
) -> Iterator[None]:
    yield
    assert gw.alive(), "the gateway process died:\n" + gw.stderr_text()[-4000:]
    marker = unique_marker("bystander")
    mark = pg.log_mark()
    assert bystander.execute(f"select '{marker}'").fetchone() == (marker,)
    fresh = gw.psql("-At", "-c", f"select '{marker}-new'")
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == f"{marker}-new"
    logged = pg.statements_logged(since=mark)
    assert f"select '{marker}'" in logged and f"select '{marker}-new'" in logged


def _raw(gw: Gateway) -> RawConnection:
    return RawConnection("127.0.0.1", gw.ports["appdb"], timeout=CLOSE_DEADLINE)


def _assert_closed_with_optional_error(reply: bytes, code: str | set[str] | None = None) -> None:
    """Whatever the gateway sent before closing must be one FATAL ErrorResponse (or, when
    ``code`` is None, possibly nothing)."""
    if not reply:
        assert code is None, f"expected an ErrorResponse {code}, got a bare close"
        return
    assert reply[:1] == b"E", reply[:80]
    (length,) = struct.unpack("!i", reply[1:5])
    assert len(reply) == 1 + length, "trailing bytes after the ErrorResponse"
    fields = parse_error_fields(reply[5:])
    assert fields["severity"] == "FATAL"
    if code is not None:
        assert fields["code"] in ({code} if isinstance(code, str) else code), fields


# A startup packet that is not one: a protocol violation, or a length beyond the limit.
BAD_STARTUP = {"08P01", "54000"}


def test_http_request_is_answered_and_closed(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        reply = raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply, BAD_STARTUP)


def test_random_garbage_is_closed(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.send(bytes(range(256)) * 8)
        reply = raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply, BAD_STARTUP)


def test_truncated_startup_is_closed(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        whole = startup_message({"user": "x", "database": "appdb"})
        raw.send(whole[: len(whole) // 2])
        raw.sock.shutdown(socket.SHUT_WR)
        reply = raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply, "08P01")


def test_oversized_length_prefix_is_refused_without_waiting(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        started = time.monotonic()
        raw.send(struct.pack("!ii", 0x7FFFFFFF, 196608) + b"user\0x\0")
        reply = raw.read_until_closed(CLOSE_DEADLINE)
        elapsed = time.monotonic() - started
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply, "54000")
    # Refused on sight of the length, not after the startup timeout.
    assert elapsed < STARTUP_TIMEOUT


def test_silent_client_is_disconnected_at_the_startup_deadline(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        started = time.monotonic()
        reply = raw.read_until_closed(CLOSE_DEADLINE)
        elapsed = time.monotonic() - started
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply)
    assert STARTUP_TIMEOUT * 0.8 <= elapsed < CLOSE_DEADLINE


def test_slow_dribbling_startup_is_cut_off(gw: Gateway) -> None:
    """One byte every quarter second never finishes inside the deadline: the deadline
    covers the whole startup, not each read."""
    whole = startup_message({"user": "x", "database": "appdb", "application_name": "d" * 300})
    raw = _raw(gw)
    started = time.monotonic()
    closed_at = None
    try:
        for byte in whole:
            try:
                raw.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            try:
                raw.read_until_closed(0.25)
            except WireError:
                continue  # still open
            closed_at = time.monotonic()
            break
    finally:
        raw.close()
    assert closed_at is not None, "the gateway let a dribbling client hold on for 80 s"
    assert closed_at - started < CLOSE_DEADLINE


def test_tls_then_silence_is_disconnected(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.negotiate_tls()
        started = time.monotonic()
        reply = raw.read_until_closed(CLOSE_DEADLINE)
        elapsed = time.monotonic() - started
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply)
    assert elapsed < CLOSE_DEADLINE


def test_garbage_instead_of_tls_handshake_is_closed(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.send(ssl_request())
        assert raw.read_byte() == b"S"
        raw.send(b"\x16\x03\x01\x00\x05hello-not-tls" * 10)
        raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()


def test_unsupported_protocol_version_gets_an_error(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.negotiate_tls()
        raw.send(startup_message({"user": "x", "database": "appdb"}, version=(2 << 16)))
        reply = raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()
    assert reply, "no ErrorResponse for protocol 2.0"
    # What PostgreSQL itself answers: feature_not_supported.
    _assert_closed_with_optional_error(reply, code="0A000")


def test_malformed_message_after_login_ends_the_session(gw: Gateway) -> None:
    raw = _raw(gw)
    try:
        raw.negotiate_tls()
        error = raw.authenticate({"user": "x", "database": "appdb"}, gw.token.value)
        assert error is None, error
        # A Query whose length says 3: shorter than the length field itself.
        raw.send(b"Q" + struct.pack("!i", 3))
        reply = raw.read_until_closed(CLOSE_DEADLINE)
    finally:
        raw.close()
    _assert_closed_with_optional_error(reply, code="08P01")


def test_many_idle_connections_do_not_block_service(gw: Gateway, pg: PgServer) -> None:
    socks = [
        socket.create_connection(("127.0.0.1", gw.ports["appdb"]), timeout=5) for _ in range(50)
    ]
    try:
        started = time.monotonic()
        marker = unique_marker("busy")
        done = gw.psql("-At", "-c", f"select '{marker}'")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < STARTUP_TIMEOUT * 3
        # All the idle ones are dropped at the deadline.
        deadline = time.monotonic() + CLOSE_DEADLINE
        for sock in socks:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""
    finally:
        for sock in socks:
            sock.close()


def test_tls_client_hello_without_ssl_request_does_not_hang(gw: Gateway) -> None:
    """A client trying direct TLS (PostgreSQL 17's sslnegotiation=direct) must get either a
    refusal or a working handshake, promptly, never a connection left hanging."""
    sock = socket.create_connection(("127.0.0.1", gw.ports["appdb"]), timeout=CLOSE_DEADLINE)
    ctx = client_tls_context()
    ctx.set_alpn_protocols(["postgresql"])
    try:
        try:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(startup_message({"user": "x", "database": "appdb"}))
                first = tls.recv(1)
        except TimeoutError:
            pytest.fail("direct TLS attempt left hanging")
        except (ssl.SSLError, ConnectionError):
            return  # refused
        # Accepted: then the next thing is the password request (or a refusal), or a close.
        assert first in (b"", b"R", b"E")
    finally:
        sock.close()
