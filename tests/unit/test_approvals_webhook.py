"""Webhooks as a receiver sees them, and what happens when the receiver misbehaves.

The receiver is the standard library's HTTP server in a thread: an implementation
independent of hoopd's own HTTP code."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio

from hoopd.approvals import ApprovalRequest, ApprovalStore, announce, notify
from hoopd.config import ApprovalsConfig
from tests.support.ports import DeadPort
from tests.unit.test_approvals_support import BOB, new_request

SECRET_PATH = "/hooks/T000/B000/s3cr3t"


class Receiver:
    """Records each POST (path, headers, JSON body) and answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[str, str | None, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                body = json.loads(self.rfile.read(length))
                receiver.received.append((self.path, self.headers["content-type"], body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def request_(tmp_path: Path) -> ApprovalRequest:
    with ApprovalStore.open(tmp_path) as store:
        return new_request(store, command="SELECT 1 WHERE a < b AND c > d & e")


async def test_json_events_carry_the_whole_request(
    receiver: Receiver, tmp_path: Path, request_: ApprovalRequest
) -> None:
    assert await notify(receiver.url, "approval.requested", request_, slack=False)
    with ApprovalStore.open(tmp_path) as store:
        decided = store.decide(request_.id, BOB, True, "fine")
    assert await notify(receiver.url, "approval.decided", decided, slack=False)

    (path, content_type, opened), (_, _, closed) = receiver.received
    assert (path, content_type) == (SECRET_PATH, "application/json")
    assert opened == {"event": "approval.requested", "request": request_.to_json()}
    assert (closed["event"], closed["request"]["status"]) == ("approval.decided", "approved")
    assert closed["request"]["resolution"] == "approved by bob"


async def test_slack_messages_are_text_with_markup_escaped(
    receiver: Receiver, tmp_path: Path, request_: ApprovalRequest
) -> None:
    assert await notify(receiver.url, "approval.requested", request_, slack=True)
    with ApprovalStore.open(tmp_path) as store:
        denied = store.decide(request_.id, BOB, False, "<!channel> & friends")
    assert await notify(receiver.url, "approval.decided", denied, slack=True)

    [(_, _, opened), (_, _, closed)] = receiver.received
    assert list(opened) == list(closed) == ["text"]
    text = opened["text"]
    assert f"`{request_.id}` requested by *alice* on *appdb* (rule `prod-deletes`)" in text
    assert "SELECT 1 WHERE a &lt; b AND c &gt; d &amp; e" in text
    assert f"hoopd approve {request_.id}" in text
    assert closed["text"] == (
        f"hoopd approval `{request_.id}` (alice on appdb):"
        " denied by bob: &lt;!channel&gt; &amp; friends"
    )


async def test_announce_uses_the_configured_format_and_does_nothing_without_a_url(
    receiver: Receiver, request_: ApprovalRequest
) -> None:
    await announce(ApprovalsConfig(), "approval.requested", request_)
    await announce(
        ApprovalsConfig(webhook_url=receiver.url, webhook_format="slack"),
        "approval.requested",
        request_,
    )
    [(_, _, body)] = receiver.received
    assert list(body) == ["text"]


async def test_an_error_answer_is_logged_not_raised(
    receiver: Receiver, request_: ApprovalRequest, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="hoopd.approvals"):
        delivered = await notify(receiver.url, "approval.requested", request_, slack=False)
    assert not delivered
    assert "answered 500" in caplog.text
    assert "s3cr3t" not in caplog.text  # the URL's path is often the secret


async def test_an_unreachable_receiver_is_logged_not_raised(
    request_: ApprovalRequest, caplog: pytest.LogCaptureFixture
) -> None:
    with DeadPort() as dead, caplog.at_level(logging.WARNING, logger="hoopd.approvals"):
        url = f"http://127.0.0.1:{dead.port}{SECRET_PATH}"
        assert not await notify(url, "approval.requested", request_, slack=False)
    assert f"webhook http://127.0.0.1:{dead.port} failed" in caplog.text
    assert "s3cr3t" not in caplog.text


async def test_a_silent_receiver_times_out(
    request_: ApprovalRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # Listening, so the connection is made, but never accepted nor answered.
    with socket.socket() as silent, caplog.at_level(logging.WARNING, logger="hoopd.approvals"):
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        start = trio.current_time()
        assert not await notify(url, "approval.requested", request_, slack=False, timeout=0.5)
        assert trio.current_time() - start < 3
    assert "no answer within 0.5 s" in caplog.text
