"""Issuing SSH certificates for a token, called directly: what is certified, what
is recorded in the token store, and how each refusal is answered."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from hoopd.approvals.api import ApiRequest, ApiResponse
from hoopd.config import TokenConfig
from hoopd.config_identity import IdentityConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.ssh_wire import fingerprint, string
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from hoopd.tokens.api import ssh_certificate_endpoint
from hoopd.tokens.keys import KeyRing
from hoopd.tokens.service import TokenService
from hoopd.tokens.ssh_issue import SshCertificateIssuer, issuer_for
from hoopd.tokens.store import TokenStore
from hoopd.tokens.verifier import GatewayTokenVerifier

CONFIG = IdentityConfig(issuer="hoopd", ssh_certificate_max_ttl_seconds=600)
ALICE = "hoopd_alice-token-0123456789abcdefghijk"
ALICE_ID = "st:" + token_sha256(ALICE)[:12]
KEY = string("ssh-ed25519") + string(b"\x05" * 32)
KEY_LINE = "ssh-ed25519 " + base64.b64encode(KEY).decode() + " agent@box"
FORM = ("content-type", "application/x-www-form-urlencoded")


@pytest.fixture
def issuer(tmp_path: Path) -> SshCertificateIssuer:
    store = TokenStore.open(tmp_path)
    keys = KeyRing(tmp_path, max_ttl_seconds=CONFIG.max_ttl_seconds)
    static = StaticTokenVerifier(
        [TokenConfig("alice", ("dba",), token_sha256(ALICE), 4e9, ("web:write", "db:read"))]
    )
    gateway = GatewayTokenVerifier(keys, CONFIG, store)
    authenticator = Authenticator(static, gateway_issuer="hoopd", gateway_tokens=gateway)
    return issuer_for(TokenService(keys, CONFIG, store, authenticator))


async def post(
    issuer: SshCertificateIssuer, form: dict[str, str], token: str | None = ALICE
) -> ApiResponse:
    headers = [FORM] if token is None else [FORM, ("authorization", f"Bearer {token}")]
    request = ApiRequest("POST", "/v1/ssh/certificate", headers, urlencode(form).encode())
    response = await ssh_certificate_endpoint(issuer, request)
    json.loads(response.encoded())
    return response


async def test_a_certificate_is_issued_and_recorded_as_a_minted_child(
    issuer: SshCertificateIssuer,
) -> None:
    response = await post(issuer, {"public_key": KEY_LINE, "scope": "web:write", "actor": "a1"})
    assert response.status == 200, response.body
    assert ("cache-control", "no-store") in response.headers
    body = response.body
    kind, data, key_id = body["certificate"].split()
    assert kind == "ssh-ed25519-cert-v01@openssh.com" and key_id == body["token_id"]
    identity = issuer.ca.lookup(base64.b64decode(data))
    assert identity is not None
    assert (identity.subject, identity.groups, identity.actor_chain) == ("alice", ("dba",), ("a1",))
    assert identity.lineage == (ALICE_ID,) and identity.scope == ("web:write",)
    assert body["expires_in"] == 600  # [identity] ssh_certificate_max_ttl_seconds

    store = issuer.service.store
    assert store.minted(body["token_id"]) and store.subtree(ALICE_ID) == [body["token_id"]]
    (event,) = store.events()
    assert (event.kind, event.token_id, event.subject, event.actor) == (
        "minted",
        body["token_id"],
        "alice",
        "a1",
    )
    assert event.detail["ssh_certificate"] == {"key": fingerprint(KEY), "type": "ssh-ed25519"}
    assert event.detail["parent"] == ALICE_ID


@pytest.mark.parametrize(
    ("form", "token", "status", "error"),
    [
        ({"public_key": KEY_LINE}, None, 401, "invalid_token"),
        ({"public_key": KEY_LINE}, "hoopd_not-a-token", 401, "invalid_token"),
        ({}, ALICE, 400, "invalid_request"),
        ({"public_key": "ssh-ed25519 AAAA"}, ALICE, 400, "invalid_request"),
        ({"public_key": KEY_LINE, "scope": "payroll:read"}, ALICE, 400, "invalid_scope"),
        ({"public_key": KEY_LINE, "ttl": "soon"}, ALICE, 400, "invalid_request"),
        ({"public_key": KEY_LINE, "ttl": "0"}, ALICE, 400, "invalid_request"),
        ({"public_key": KEY_LINE, "actor": "not an actor"}, ALICE, 400, "invalid_request"),
    ],
)
async def test_refusals_are_answered_and_recorded(
    issuer: SshCertificateIssuer, form: dict[str, str], token: str | None, status: int, error: str
) -> None:
    response = await post(issuer, form, token)
    assert (response.status, response.body["error"]) == (status, error), response.body
    if status == 401:
        assert any(name == "www-authenticate" for name, _ in response.headers)
    (event,) = issuer.service.store.events()
    assert event.kind == "refused" and event.detail["error"] == error
    assert event.token_id == (None if status == 401 else ALICE_ID)


async def test_a_shorter_ttl_is_honoured(
    issuer: SshCertificateIssuer,
) -> None:
    response = await post(issuer, {"public_key": KEY_LINE, "scope": "db:read", "ttl": "60"})
    assert response.body["expires_in"] == 60


async def test_an_unusable_ca_answers_503_and_issues_nothing(
    issuer: SshCertificateIssuer, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "ssh_user_ca").write_text("not a key")
    response = await post(issuer, {"public_key": KEY_LINE, "scope": "web:write"})
    assert (response.status, response.body["error"]) == (503, "temporarily_unavailable")
    assert issuer.service.store.events() == []
