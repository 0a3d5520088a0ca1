"""Telling people a request is waiting, or was decided: one HTTP POST per event.

A webhook is a notification, not part of the decision: a failed or slow webhook is
logged and forgotten, and the request waits for a decision all the same (approvers
can still find it with ``hoopd approvals`` or the admin API).
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import h11
import trio

from hoopd.approvals.model import ApprovalRequest
from hoopd.approvals.text import one_line, shown, utc
from hoopd.config import ApprovalsConfig

log = logging.getLogger("hoopd.approvals")

Event = Literal["approval.requested", "approval.decided"]
TIMEOUT_SECONDS: Final = 5.0
_MAX_RESPONSE_HEAD: Final = 16 * 1024
_SLACK_COMMAND_CHARS: Final = 2500


async def notify(
    url: str,
    event: Event,
    request: ApprovalRequest,
    *,
    slack: bool,
    timeout: float = TIMEOUT_SECONDS,
) -> bool:
    """POST ``event`` about ``request`` to ``url``; True if answered with a 2xx status.

    The body is ``{"event": ..., "request": {...}}`` (the admin API's request shape), or
    with ``slack=True`` a Slack-compatible ``{"text": "..."}``. Never raises for a
    failure (unreachable, refused, slow past ``timeout``, a non-2xx answer): it is
    logged at WARNING, naming only the URL's scheme, host and port, since the rest of
    a webhook URL is often a secret. Cancelling the caller still cancels it.
    """
    body = slack_body(event, request) if slack else {"event": event, "request": request.to_json()}
    where = _safe_origin(url)
    try:
        with trio.fail_after(timeout):
            status = await post_json(url, body)
    except trio.TooSlowError:
        log.warning(
            "webhook %s: no answer within %.1f s (%s %s)", where, timeout, event, request.id
        )
        return False
    except Exception as exc:
        log.warning("webhook %s failed (%s %s): %s", where, event, request.id, _describe(exc))
        return False
    if not 200 <= status < 300:
        log.warning("webhook %s answered %d (%s %s)", where, status, event, request.id)
        return False
    return True


async def announce(config: ApprovalsConfig, event: Event, request: ApprovalRequest) -> None:
    """:func:`notify` the configured webhook, if there is one."""
    if config.webhook_url:
        await notify(config.webhook_url, event, request, slack=config.webhook_format == "slack")


def slack_body(event: Event, request: ApprovalRequest) -> dict[str, Any]:
    """A Slack message: who, where, which rule, the command (escaped, as approvers
    must see it) and how to decide; or the outcome."""
    r = request
    if event == "approval.decided":
        text = (
            f"hoopd approval `{r.id}` ({_mrkdwn(r.requester)} on {_mrkdwn(r.connection)}):"
            f" {_mrkdwn(r.resolution or r.status)}"
        )
        return {"text": text}
    command, cut = one_line(r.command, _SLACK_COMMAND_CHARS)
    if not cut:
        command = shown(r.command)
    needs = f"{r.min_approvals} approval{'s' if r.min_approvals > 1 else ''}"
    lines = [
        f"hoopd approval `{r.id}` requested by *{_mrkdwn(r.requester)}* on"
        f" *{_mrkdwn(r.connection)}* (rule `{_mrkdwn(r.rule)}`)",
        f"needs {needs} from {_mrkdwn(', '.join(r.approver_groups))} before {utc(r.deadline)}",
        f"```{_mrkdwn(command)}```",
        f"Decide with `hoopd approve {r.id}` or `hoopd deny {r.id} --reason ...`",
    ]
    return {"text": "\n".join(lines)}


def _mrkdwn(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions); everything else is literal.
    return shown(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def post_json(url: str, payload: Any) -> int:
    """POST ``payload`` as JSON to an http(s) URL and return the response status.

    Raises ``OSError``, ``trio`` stream errors, ``ssl.SSLError``, ``h11`` protocol
    errors or ``ValueError`` (a bad URL) on failure; the caller bounds the time.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    stream: trio.abc.Stream
    if parts.scheme == "https":
        stream = await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context()
        )
    else:
        stream = await trio.open_tcp_stream(host, port)
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]  # never send userinfo as the Host
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_RESPONSE_HEAD)
    async with stream:
        request = h11.Request(
            method="POST",
            target=target,
            headers=[
                ("host", host_header),
                ("user-agent", "hoopd"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ],
        )
        out = (conn.send(request) or b"") + (conn.send(h11.Data(data=body)) or b"")
        await stream.send_all(out + (conn.send(h11.EndOfMessage()) or b""))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(16 * 1024)))
            elif isinstance(event, h11.Response):
                return event.status_code
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed without an answer")


def _safe_origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(unparseable URL)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
