"""The admin API's HTTP limits, over real loopback sockets: what a client sending too
much, too slowly or nonsense gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from hoopd.approvals import ApprovalStore, serve_admin_api
from hoopd.approvals import server as admin_server
from hoopd.config import TokenConfig
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from tests.unit.test_approvals_support import TOKENS

AUTH = f"authorization: Bearer {TOKENS['bob']}\r\n".encode()


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    verifier = StaticTokenVerifier([TokenConfig("bob", ("dba",), token_sha256(TOKENS["bob"]))])
    async with trio.open_nursery() as nursery:
        bound: int = await nursery.start(
            serve_admin_api, ApprovalStore.open(tmp_path), verifier, "127.0.0.1", 0
        )
        yield bound
        nursery.cancel_scope.cancel()


async def exchange(port: int, data: bytes) -> tuple[str, bytes]:
    """Send ``data``, read until the server closes; the status line and the body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if data:
            await stream.send_all(data)
        answer = b""
        with trio.fail_after(15):
            while chunk := await stream.receive_some(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


async def test_a_well_formed_request_is_answered_and_the_connection_closed(port: int) -> None:
    status, body = await exchange(
        port, b"GET /v1/approvals HTTP/1.1\r\nhost: x\r\n" + AUTH + b"\r\n"
    )
    assert (status, body) == ("HTTP/1.1 200 OK", b'{"approvals": []}\n')


async def test_nonsense_is_a_400(port: int) -> None:
    status, body = await exchange(port, b"HELLO THERE\r\n\r\n")
    assert status == "HTTP/1.1 400 Bad Request"
    assert body.startswith(b'{"error": "malformed HTTP request')


async def test_too_many_header_fields_or_too_big_a_head_is_a_431(port: int) -> None:
    many = b"".join(b"x-%d: 1\r\n" % i for i in range(65))
    status, _ = await exchange(port, b"GET /v1/approvals HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n")
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    for size in (17_000, 40_000):  # arriving whole, and too big to buffer
        big = b"x-big: " + b"a" * size + b"\r\n"
        status, _ = await exchange(
            port, b"GET /v1/approvals HTTP/1.1\r\nhost: x\r\n" + big + b"\r\n"
        )
        assert status == "HTTP/1.1 431 Request Header Fields Too Large", size


async def test_a_body_over_64_kib_is_a_413(port: int) -> None:
    head = b"POST /v1/approvals/zzzzzzzzzz/deny HTTP/1.1\r\nhost: x\r\n" + AUTH
    declared = head + b"content-length: 70000\r\n\r\n" + b"a" * 70000
    status, _ = await exchange(port, declared)
    assert status.startswith("HTTP/1.1 413 ")  # the phrase depends on the Python version
    chunk = b"8000\r\n" + b"a" * 0x8000 + b"\r\n"
    chunked = head + b"transfer-encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
    status, _ = await exchange(port, chunked)
    assert status.startswith("HTTP/1.1 413")


async def test_a_request_that_does_not_arrive_in_time_is_a_408(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_server, "REQUEST_DEADLINE_SECONDS", 0.5)
    start = trio.current_time()
    status, _ = await exchange(port, b"GET /v1/approvals HTTP/1.1\r\nhost: x\r\n")  # no end
    assert status == "HTTP/1.1 408 Request Timeout"
    assert trio.current_time() - start < 5
