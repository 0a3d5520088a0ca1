"""The admin API's meaning, apart from HTTP framing: one request in, one response out.

The approval endpoints are served here; other parts of the gateway add theirs as
:class:`Route` entries (token exchange, revocation, JWKS, blast radius: see
hoopd/tokens/api.py). Every endpoint needs ``Authorization: Bearer <gateway token>``
unless its route says otherwise (the JWKS is public; the token endpoint
authenticates the subject token in its body, as RFC 8693 does). A caller sees the
requests it made and those it is an approver for; a request it may not see answers 404,
exactly like one that does not exist. docs/approvals.md and docs/admin-openapi.yaml
describe the endpoints.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hoopd.approvals.ids import normalise_request_id
from hoopd.approvals.model import ApprovalError, ErrorKind
from hoopd.approvals.rules import may_see
from hoopd.approvals.store import ApprovalStore
from hoopd.identity.base import Identity, TokenVerifier

log = logging.getLogger("hoopd.approvals")

PREFIX: Final = "/v1/approvals"
_ERROR_STATUS: Final[dict[ErrorKind, int]] = {
    "unknown": 404,
    "not-pending": 409,
    "forbidden": 403,
    "duplicate": 409,
    "invalid": 400,
}


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """``headers`` as received (names in any case); ``target`` may carry a query."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A JSON response: errors are ``{"error": "..."}``."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8") + b"\n"


def error(status: int, message: str, *headers: tuple[str, str]) -> ApiResponse:
    return ApiResponse(status, {"error": message}, headers)


Handler = Callable[[ApiRequest, Identity | None], Awaitable[ApiResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """An endpoint beside the approval ones: ``method`` and exact ``path``; the
    handler gets the authenticated caller, or None when ``authenticated`` is false."""

    method: str
    path: str
    handler: Handler
    authenticated: bool = True


class AdminApi:
    """Answers admin API requests from ``store``, authenticating with ``verifier``.

    :meth:`handle` never raises for anything a client sends.
    """

    def __init__(
        self, store: ApprovalStore, verifier: TokenVerifier, routes: Sequence[Route] = ()
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._routes = {(route.path, route.method): route for route in routes}
        self._paths = {route.path for route in routes}

    async def handle(self, request: ApiRequest) -> ApiResponse:
        path = request.target.partition("?")[0]
        if path in self._paths:
            return await self._routed(request, path)
        caller = await self._authenticate(request)
        if isinstance(caller, ApiResponse):
            return caller
        parts = path.removeprefix(PREFIX).split("/") if path.startswith(PREFIX) else None
        try:
            match parts:
                case [""] | ["", ""]:
                    return _only(request, "GET") or self._list(caller)
                case ["", rid]:
                    return _only(request, "GET") or self._get(caller, rid)
                case ["", rid, ("approve" | "deny") as action]:
                    return _only(request, "POST") or self._decide(caller, rid, action, request)
                case _:
                    return error(404, f"no such endpoint: {path}")
        except ApprovalError as exc:
            return error(_ERROR_STATUS[exc.kind], str(exc))
        except sqlite3.Error as exc:
            log.error("admin API: approval store failed: %s", exc)
            return error(503, "the approval store is unavailable; try again")

    async def _routed(self, request: ApiRequest, path: str) -> ApiResponse:
        route = self._routes.get((path, request.method))
        if route is None:
            allowed = ", ".join(sorted(m for p, m in self._routes if p == path))
            return error(405, f"use {allowed} on {path}", ("allow", allowed))
        caller: Identity | None = None
        if route.authenticated:
            found = await self._authenticate(request)
            if isinstance(found, ApiResponse):
                return found
            caller = found
        return await route.handler(request, caller)

    async def _authenticate(self, request: ApiRequest) -> Identity | ApiResponse:
        challenge = ("www-authenticate", 'Bearer realm="hoopd"')
        values = request.header("authorization")
        if len(values) != 1:
            return error(401, "send exactly one Authorization: Bearer <token> header", challenge)
        scheme, _, token = values[0].strip().partition(" ")
        identity = (
            await self._verifier.verify(token.strip()) if scheme.lower() == "bearer" else None
        )
        if identity is None:
            return error(401, "the bearer token is not valid", challenge)
        return identity

    def _list(self, caller: Identity) -> ApiResponse:
        visible = [r.to_json() for r in self._store.pending() if may_see(r, caller)]
        return ApiResponse(200, {"approvals": visible})

    def _get(self, caller: Identity, rid: str) -> ApiResponse:
        # Expire first, so a request past its deadline never shows as pending.
        self._store.expire_overdue(self._store.now())
        found = self._store.get(rid)
        if found is None or not may_see(found, caller):
            return error(404, f"no approval request {rid!r}")
        return ApiResponse(200, found.to_json())

    def _decide(self, caller: Identity, rid: str, action: str, request: ApiRequest) -> ApiResponse:
        reason = _reason(request.body)
        if isinstance(reason, ApiResponse):
            return reason
        if normalise_request_id(rid) is None:
            return error(404, f"no approval request {rid!r}")
        decided = self._store.decide(rid, caller, action == "approve", reason)
        return ApiResponse(200, decided.to_json())


def _only(request: ApiRequest, method: str) -> ApiResponse | None:
    if request.method == method:
        return None
    return error(405, f"use {method} here", ("allow", method))


def _reason(body: bytes) -> str | ApiResponse:
    """The ``reason`` of a decision body: ``{"reason": "..."}``; an empty body is ``""``."""
    if not body.strip():
        return ""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return error(400, f"the body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return error(400, 'the body must be a JSON object such as {"reason": "..."}')
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        return error(400, f"unknown key in body: {unknown[0]!r} (only reason is accepted)")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        return error(400, "reason must be a string")
    return reason
