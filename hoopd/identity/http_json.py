"""Fetching small JSON documents over HTTP(S) for identity: OIDC discovery and key
sets, the device flow, token exchange at a gateway.

Guarantees of :func:`request_json`: only https, or http to a loopback host, is ever
requested, redirects included; https is verified (system store, or only the given
CA file); a loopback request never goes through a proxy; at most
:data:`MAX_DOCUMENT_BYTES` are read; every request times out after
:data:`FETCH_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import trio

from hoopd.config_identity import is_loopback_host

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
FETCH_TIMEOUT_SECONDS: Final = 10.0


def url_allowed(url: str) -> bool:
    """https with a host, or http to a loopback host (a provider on this machine)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect must not lead from https to plain http elsewhere.
    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if not url_allowed(newurl):
            raise urllib.error.URLError(f"redirect to a disallowed URL {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def request_json(
    url: str,
    *,
    ca_file: Path | None = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """GET ``url`` (POST ``form`` url-encoded when given); the status and parsed JSON body.

    Blocking. An error status still returns its JSON body (OAuth errors travel in
    one). Raises ``ValueError`` for a disallowed URL, a body over
    :data:`MAX_DOCUMENT_BYTES` or one that is not JSON, ``OSError`` for transport
    failures. https is verified against the system store, or only ``ca_file``.
    """
    if not url_allowed(url):
        raise ValueError(f"{url!r} is not https (or http to a loopback address)")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.HTTPSHandler(context=context),
        _CheckedRedirects(),
    ]
    if is_loopback_host(urllib.parse.urlsplit(url).hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))  # no proxy can reach our loopback
    opener = urllib.request.build_opener(*handlers)
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        response = opener.open(request, timeout=FETCH_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        status = int(response.status or 0)
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return status, json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{url} answered HTTP {status} with a body that is not JSON") from exc


async def fetch_json_url(url: str, ca_file: Path | None) -> Any:
    """The default ``FetchJson`` of :mod:`hoopd.identity.oidc`: :func:`request_json`
    in a worker thread; raises ``ValueError`` unless the answer is HTTP 200 with JSON."""
    status, document = await trio.to_thread.run_sync(
        lambda: request_json(url, ca_file=ca_file), abandon_on_cancel=True
    )
    if status != 200:
        raise ValueError(f"{url} answered HTTP {status}")
    return document
