"""Admin HTTP API handlers for gateway tokens, on the types of
:mod:`hoopd.approvals.api`: one request in, one response out, never raising for
anything a client sends.

* ``POST /v1/token``: RFC 8693 token exchange (:mod:`hoopd.tokens.service` lists the
  parameters and error codes). The body is ``application/x-www-form-urlencoded`` as
  RFC 6749 requires, or a JSON object of the same parameters (strings; ``ttl`` may be
  a number). No ``Authorization`` header: the subject token is the credential.
  Answers carry ``Cache-Control: no-store`` (RFC 6749 section 5.1).
* ``GET /.well-known/jwks.json``: the public signing keys; no authentication.
* ``POST /v1/revocations`` (authenticated by the router; the caller is passed in):
  a JSON object with exactly one of ``token_id``, ``subject`` or ``actor`` and an
  optional ``reason``. Who may revoke what: any caller its own token and any token
  exchanged from it (its subtree, as recorded in the store); a caller holding a root
  token (no actor) its own subject; members of :data:`ADMIN_GROUP` anything. Answers
  201 with the revocation, 400 for a malformed body, 403 when not allowed, 503 when
  the store cannot be used.
* ``POST /v1/ssh/certificate``: an SSH user certificate for the caller's token
  (``Authorization: Bearer``: any token a token exchange accepts, OIDC included) and
  the OpenSSH public key in the body (form or JSON, as for ``/v1/token``; the
  parameters are in :mod:`hoopd.tokens.ssh_issue`). Answers 200 with
  ``certificate`` (an OpenSSH certificate line), ``token_id``, ``expires_at``,
  ``expires_in`` and ``scope``; 401 ``invalid_token``; 400 and 503 as ``/v1/token``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from hoopd.approvals.api import ApiRequest, ApiResponse, Route, error
from hoopd.identity.base import Identity
from hoopd.tokens.keys import KeyStoreError
from hoopd.tokens.service import TokenService
from hoopd.tokens.ssh_issue import SshCertificateIssuer, issuer_for

log = logging.getLogger("hoopd.tokens")

TOKEN_PATH: Final = "/v1/token"
JWKS_PATH: Final = "/.well-known/jwks.json"
REVOCATIONS_PATH: Final = "/v1/revocations"
SSH_CERTIFICATE_PATH: Final = "/v1/ssh/certificate"
ADMIN_GROUP: Final = "hoopd-admins"
"""Members may revoke any token, any subject and any actor."""

_NO_STORE: Final = (("cache-control", "no-store"), ("pragma", "no-cache"))
_CHALLENGE: Final = 'Bearer realm="hoopd", error="invalid_token"'
_FORM: Final = "application/x-www-form-urlencoded"
_JSON: Final = "application/json"
_REVOCATION_KEYS: Final = ("token_id", "subject", "actor")
_MAX_REASON_CHARS: Final = 1000


async def token_endpoint(service: TokenService, request: ApiRequest) -> ApiResponse:
    """``POST /v1/token``: answer a token exchange request."""
    if request.method != "POST":
        return error(405, "use POST here", ("allow", "POST"))
    form = _form(request)
    if isinstance(form, str):
        return ApiResponse(400, {"error": "invalid_request", "error_description": form}, _NO_STORE)
    status, body = await service.exchange(form)
    return ApiResponse(status, body, _NO_STORE)


async def ssh_certificate_endpoint(
    issuer: SshCertificateIssuer, request: ApiRequest
) -> ApiResponse:
    """``POST /v1/ssh/certificate``: certify a public key for the bearer token."""
    if request.method != "POST":
        return error(405, "use POST here", ("allow", "POST"))
    form = _form(request)
    if isinstance(form, str):
        return ApiResponse(400, {"error": "invalid_request", "error_description": form}, _NO_STORE)
    values = request.header("authorization")
    scheme, _, token = values[0].strip().partition(" ") if len(values) == 1 else ("", "", "")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    status, body = await issuer.issue(bearer, form)
    if status == 401:
        # RFC 6750 section 3: a refused bearer token is answered with a challenge.
        return ApiResponse(status, body, (*_NO_STORE, ("www-authenticate", _CHALLENGE)))
    return ApiResponse(status, body, _NO_STORE)


def jwks_endpoint(service: TokenService, request: ApiRequest) -> ApiResponse:
    """``GET /.well-known/jwks.json``: the JWK Set that verifies gateway tokens."""
    if request.method not in ("GET", "HEAD"):
        return error(405, "use GET here", ("allow", "GET"))
    try:
        keys = service.jwks()
    except KeyStoreError as exc:
        log.error("cannot serve the JWKS: %s", exc)
        return error(503, "the signing keys are unavailable; try again")
    # Short caching: a verifier elsewhere sees a rotated key within minutes.
    return ApiResponse(200, keys, (("cache-control", "public, max-age=300"),))


async def revocations_endpoint(
    service: TokenService, caller: Identity, request: ApiRequest
) -> ApiResponse:
    """``POST /v1/revocations``: revoke a token (and its subtree), a subject or an actor."""
    if request.method != "POST":
        return error(405, "use POST here", ("allow", "POST"))
    parsed = _revocation_body(request.body)
    if isinstance(parsed, ApiResponse):
        return parsed
    kind, value, reason = parsed
    try:
        refusal = _may_revoke(service, caller, kind, value)
        if refusal is not None:
            return error(403, refusal)
        by = revoker_name(caller)
        if kind == "token_id":
            revocation = service.revoke_token(value, by, reason)
        elif kind == "subject":
            revocation = service.revoke_subject(value, by, reason)
        else:
            revocation = service.revoke_actor(value, by, reason)
    except sqlite3.Error as exc:
        log.error("revocation failed: the token store is unavailable: %s", exc)
        return error(503, "the token store is unavailable; try again")
    return ApiResponse(201, {"revocation": revocation.to_json()})


def revoker_name(caller: Identity) -> str:
    """How a revocation names who wrote it: the actor, the subject it acts for, and
    the token id (never the token)."""
    if caller.actor_chain:
        return f"{caller.actor} for {caller.subject} ({caller.token_id})"
    return f"{caller.subject} ({caller.token_id})"


def _may_revoke(service: TokenService, caller: Identity, kind: str, value: str) -> str | None:
    """None if ``caller`` may revoke, else why not."""
    if ADMIN_GROUP in caller.groups:
        return None
    if kind == "token_id":
        if value == caller.token_id or value in service.store.subtree(caller.token_id):
            return None
        return (
            f"you may revoke only your own token and tokens exchanged from it;"
            f" {ADMIN_GROUP} may revoke others"
        )
    if kind == "subject" and value == caller.subject and not caller.actor_chain:
        return None
    return f"revoking a subject other than your own, or an actor, needs {ADMIN_GROUP}"


def _revocation_body(body: bytes) -> tuple[str, str, str] | ApiResponse:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return error(400, f"the body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return error(400, 'the body must be a JSON object such as {"token_id": "gt:..."}')
    unknown = sorted(set(data) - {*_REVOCATION_KEYS, "reason"})
    if unknown:
        return error(400, f"unknown key in body: {unknown[0]!r}")
    named = [key for key in _REVOCATION_KEYS if key in data]
    if len(named) != 1:
        return error(400, "give exactly one of token_id, subject or actor")
    kind = named[0]
    value, reason = data[kind], data.get("reason", "")
    if not isinstance(value, str) or not value.strip():
        return error(400, f"{kind} must be a non-empty string")
    if not isinstance(reason, str) or len(reason) > _MAX_REASON_CHARS:
        return error(400, f"reason must be a string of at most {_MAX_REASON_CHARS} characters")
    return kind, value.strip(), reason


def _form(request: ApiRequest) -> dict[str, str] | str:
    """The request's parameters, or why they cannot be read."""
    types = request.header("content-type")
    media = types[0].partition(";")[0].strip().lower() if len(types) == 1 else ""
    if media == _FORM:
        try:
            pairs = parse_qsl(
                request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True
            )
        except (UnicodeDecodeError, ValueError):
            return "the body is not valid application/x-www-form-urlencoded UTF-8"
    elif media == _JSON:
        try:
            data = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            return "the body is not valid JSON"
        if not isinstance(data, dict):
            return "the body must be a JSON object"
        json_pairs = _json_pairs(data)
        if json_pairs is None:
            return "every parameter must be a string (ttl may be a number)"
        pairs = json_pairs
    else:
        return f"the body must be {_FORM} (or {_JSON})"
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 section 3.2: parameters must not be included more than once.
            return f"{name} is given more than once"
        if value != "":  # RFC 6749 section 3.1: an empty parameter is an omitted one
            form[name] = value
    return form


def _json_pairs(data: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The object's members as form parameters; None if one is not a string."""
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        if name == "ttl" and isinstance(value, int) and not isinstance(value, bool):
            pairs.append((name, str(value)))
        elif isinstance(value, str):
            pairs.append((name, value))
        else:
            return None
    return pairs


def token_routes(service: TokenService) -> list[Route]:
    """The admin API routes of this module, for :class:`hoopd.approvals.api.AdminApi`."""

    async def token(request: ApiRequest, caller: Identity | None) -> ApiResponse:
        return await token_endpoint(service, request)

    async def jwks(request: ApiRequest, caller: Identity | None) -> ApiResponse:
        return jwks_endpoint(service, request)

    async def revocations(request: ApiRequest, caller: Identity | None) -> ApiResponse:
        assert caller is not None  # the route is authenticated
        return await revocations_endpoint(service, caller, request)

    issuer = issuer_for(service)

    async def ssh_certificate(request: ApiRequest, caller: Identity | None) -> ApiResponse:
        return await ssh_certificate_endpoint(issuer, request)

    return [
        Route("POST", TOKEN_PATH, token, authenticated=False),
        # Authenticated by the issuer: the bearer may be any token an exchange accepts.
        Route("POST", SSH_CERTIFICATE_PATH, ssh_certificate, authenticated=False),
        Route("GET", JWKS_PATH, jwks, authenticated=False),
        Route("POST", REVOCATIONS_PATH, revocations),
    ]
