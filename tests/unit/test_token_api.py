"""The token admin API handlers, called directly: status codes, bodies and headers
for token exchange, the JWKS and revocations (and who may revoke what)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from jose import jwt

from hoopd import revocation_bus
from hoopd.approvals.api import ApiRequest, ApiResponse
from hoopd.config import TokenConfig
from hoopd.config_identity import IdentityConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.base import Identity
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from hoopd.tokens.api import (
    ADMIN_GROUP,
    jwks_endpoint,
    revocations_endpoint,
    token_endpoint,
)
from hoopd.tokens.keys import KeyRing
from hoopd.tokens.service import ACCESS_TOKEN_TYPE, GRANT_TYPE, TokenService
from hoopd.tokens.store import TokenStore
from hoopd.tokens.verifier import GatewayTokenVerifier

CONFIG = IdentityConfig(issuer="hoopd")
ALICE = "hoopd_alice-token-0123456789abcdefghijk"
ALICE_ID = "st:" + token_sha256(ALICE)[:12]
FORM = ("content-type", "application/x-www-form-urlencoded")


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    monkeypatch.setattr(revocation_bus, "announce", calls.append)
    return calls


@pytest.fixture
def gateway(tmp_path: Path) -> GatewayTokenVerifier:
    store = TokenStore.open(tmp_path)
    return GatewayTokenVerifier(KeyRing(tmp_path, max_ttl_seconds=3600), CONFIG, store)


@pytest.fixture
def service(tmp_path: Path, gateway: GatewayTokenVerifier) -> TokenService:
    static = StaticTokenVerifier(
        [TokenConfig("alice", ("dba",), token_sha256(ALICE), 4e9, ("db:write",))]
    )
    return TokenService(
        KeyRing(tmp_path, max_ttl_seconds=3600),
        CONFIG,
        TokenStore.open(tmp_path),
        Authenticator(static, gateway_issuer=CONFIG.issuer, gateway_tokens=gateway),
    )


def exchange_body(subject_token: str = ALICE, **params: str) -> dict[str, str]:
    return {
        "grant_type": GRANT_TYPE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        **params,
    }


async def post_form(service: TokenService, body: bytes, *headers: tuple[str, str]) -> ApiResponse:
    response = await token_endpoint(service, ApiRequest("POST", "/v1/token", headers, body))
    json.loads(response.encoded())
    return response


async def child_of_alice(service: TokenService, **params: str) -> tuple[str, str]:
    response = await post_form(service, urlencode(exchange_body(**params)).encode(), FORM)
    assert response.status == 200, response.body
    token = response.body["access_token"]
    return token, "gt:" + jwt.get_unverified_claims(token)["jti"]


# -- POST /v1/token ---------------------------------------------------------------------


async def test_a_form_encoded_exchange_answers_a_token_not_to_be_cached(
    service: TokenService, gateway: GatewayTokenVerifier
) -> None:
    body = urlencode(exchange_body(scope="db:read", actor="bot")).encode()
    response = await post_form(
        service, body, ("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
    )
    assert response.status == 200
    assert set(response.body) == {
        "access_token",
        "issued_token_type",
        "token_type",
        "expires_in",
        "scope",
    }
    assert ("cache-control", "no-store") in response.headers
    child = await gateway.verify(response.body["access_token"])
    assert child is not None and child.actor_chain == ("bot",)


async def test_a_json_exchange_is_accepted_with_a_numeric_ttl(service: TokenService) -> None:
    body = json.dumps(exchange_body() | {"ttl": 60}).encode()
    response = await post_form(service, body, ("content-type", "application/json"))
    assert (response.status, response.body["expires_in"]) == (200, 60)


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (urlencode(exchange_body()).encode(), [], "the body must be"),
        (urlencode(exchange_body()).encode(), [("content-type", "text/plain")], "the body must be"),
        (
            urlencode(exchange_body()).encode() + b"&scope=a:read&scope=b:read",
            [FORM],
            "more than once",
        ),
        (b"\xff\xfe", [FORM], "not valid"),
        (b"[1]", [("content-type", "application/json")], "JSON object"),
        (
            json.dumps(exchange_body() | {"ttl": [1]}).encode(),
            [("content-type", "application/json")],
            "string",
        ),
    ],
)
async def test_unreadable_requests_are_invalid_request(
    service: TokenService, body: bytes, headers: list[tuple[str, str]], says: str
) -> None:
    response = await post_form(service, body, *headers)
    assert response.status == 400
    assert response.body["error"] == "invalid_request"
    assert says in response.body["error_description"]


async def test_refusals_carry_the_oauth_error_and_no_token(service: TokenService) -> None:
    widen = await post_form(service, urlencode(exchange_body(scope="*:admin")).encode(), FORM)
    assert (widen.status, widen.body["error"]) == (400, "invalid_scope")
    bad = await post_form(service, urlencode(exchange_body("hoopd_forged")).encode(), FORM)
    assert (bad.status, bad.body["error"]) == (400, "invalid_request")
    assert "hoopd_forged" not in bad.encoded().decode()
    assert ("cache-control", "no-store") in bad.headers


async def test_only_post_is_accepted(service: TokenService) -> None:
    response = await token_endpoint(service, ApiRequest("GET", "/v1/token"))
    assert (response.status, response.headers) == (405, (("allow", "POST"),))


# -- GET /.well-known/jwks.json -----------------------------------------------------------


async def test_the_jwks_verifies_issued_tokens(service: TokenService) -> None:
    token, _ = await child_of_alice(service)
    response = jwks_endpoint(service, ApiRequest("GET", "/.well-known/jwks.json"))
    assert response.status == 200
    (key,) = response.body["keys"]
    assert key["kid"] == jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, response.body, algorithms=["ES256"], audience="hoopd")
    assert claims["sub"] == "alice"
    assert jwks_endpoint(service, ApiRequest("POST", "/.well-known/jwks.json")).status == 405


# -- POST /v1/revocations -----------------------------------------------------------------


def caller(
    token_id: str, *, groups: tuple[str, ...] = (), actors: tuple[str, ...] = ()
) -> Identity:
    return Identity(subject="alice", groups=groups, token_id=token_id, actor_chain=actors)


async def revoke(service: TokenService, who: Identity, **body: Any) -> ApiResponse:
    request = ApiRequest("POST", "/v1/revocations", (), json.dumps(body).encode())
    response = await revocations_endpoint(service, who, request)
    json.loads(response.encoded())
    return response


async def test_a_caller_revokes_its_own_token_and_its_subtree(
    service: TokenService, gateway: GatewayTokenVerifier, announced: list[Path], tmp_path: Path
) -> None:
    child, child_id = await child_of_alice(service, actor="bot")
    sibling, _ = await child_of_alice(service, actor="x")  # not exchanged from child
    response = await revoke(service, caller(ALICE_ID), token_id=child_id, reason="done")
    assert response.status == 201
    assert response.body["revocation"]["value"] == child_id
    assert response.body["revocation"]["reason"] == "done"
    assert announced == [tmp_path]
    assert await gateway.verify(child) is None
    assert await gateway.verify(sibling) is not None

    own = await revoke(service, caller(ALICE_ID), token_id=ALICE_ID)
    assert own.status == 201
    assert await gateway.verify(sibling) is None  # its root is revoked


async def test_revoking_others_needs_the_admin_group(
    service: TokenService, announced: list[Path]
) -> None:
    _, child_id = await child_of_alice(service, actor="bot")
    stranger = caller("st:ffffffffffff")
    for body in ({"token_id": child_id}, {"subject": "bob"}, {"actor": "bot"}):
        response = await revoke(service, stranger, **body)
        assert response.status == 403, body
        assert ADMIN_GROUP in response.body["error"]
    assert announced == []
    assert service.store.revocations_since(0) == []

    admin = caller("st:ffffffffffff", groups=(ADMIN_GROUP,))
    for body in ({"token_id": child_id}, {"subject": "bob"}, {"actor": "bot"}):
        assert (await revoke(service, admin, **body)).status == 201
    assert [r.kind for r in service.store.revocations_since(0)] == ["token", "subject", "actor"]
    assert len(announced) == 3


async def test_only_a_root_token_may_revoke_its_own_subject(service: TokenService) -> None:
    delegated = caller("gt:delegated-00000000000", actors=("bot",))
    assert (await revoke(service, delegated, subject="alice")).status == 403
    assert (await revoke(service, caller(ALICE_ID), subject="alice")).status == 201


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"token_id": "gt:x", "subject": "alice"}).encode(),
        json.dumps({"token_id": "gt:x", "why": "?"}).encode(),
        json.dumps({"token_id": ""}).encode(),
        json.dumps({"token_id": 5}).encode(),
        json.dumps({"token_id": "gt:x", "reason": 5}).encode(),
    ],
)
async def test_malformed_revocations_are_400(service: TokenService, body: bytes) -> None:
    request = ApiRequest("POST", "/v1/revocations", (), body)
    response = await revocations_endpoint(service, caller(ALICE_ID, groups=(ADMIN_GROUP,)), request)
    assert response.status == 400
    assert service.store.revocations_since(0) == []
