"""OIDC against a real provider (npm oidc-provider on 127.0.0.1): the tokens it issues
verify to the right identity, tokens meant for others do not, rotated keys are
picked up, and the device flow works end to end."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from hoopd.identity import device_flow
from hoopd.identity.device_flow import (
    DeviceFlowError,
    client_credentials_token,
    discover,
    poll_for_token,
    start_device_flow,
)
from hoopd.identity.http_json import fetch_json_url
from hoopd.identity.oidc import OidcAccepted, OidcRejected, OidcVerifier
from tests.support.oidc import (
    ACCOUNT_GROUPS,
    DEVICE_CLIENT_ID,
    DEVICE_SCOPE,
    ES256_AUDIENCE,
    MACHINE_CLIENT_ID,
    MACHINE_CLIENT_SECRET,
    MACHINE_GROUPS,
    OTHER_AUDIENCE,
    OidcProvider,
    running_provider,
)


def unverified(token: str, part: int) -> dict[str, Any]:
    segment = token.split(".")[part]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=="))
    return decoded


@dataclass
class CountingFetch:
    """The real fetcher, remembering every URL it read."""

    urls: list[str]

    async def __call__(self, url: str, ca_file: Path | None) -> Any:
        self.urls.append(url)
        return await fetch_json_url(url, ca_file)


async def test_machine_token_verifies_to_its_identity(provider: OidcProvider) -> None:
    config = provider.issuer_config(
        scope=("app:read",), group_scopes=MappingProxyType({"robots": ("batch:write",)})
    )
    verifier = OidcVerifier([config])
    before = time.time()
    access_token = provider.machine_token()["access_token"]

    identity = await verifier.verify(access_token)

    assert identity is not None
    assert identity.subject == MACHINE_CLIENT_ID
    assert identity.groups == MACHINE_GROUPS
    assert identity.scope == ("app:read", "batch:write")
    assert identity.issuer == "test-idp"
    assert identity.token_id == "oidc:test-idp:" + unverified(access_token, 1)["jti"]
    assert identity.expires_at is not None and before + 590 <= identity.expires_at
    assert before - 5 <= identity.issued_at <= time.time() + 5


async def test_tokens_for_another_audience_are_rejected(provider: OidcProvider) -> None:
    verifier = OidcVerifier([provider.issuer_config()])
    other = provider.machine_token(resource=OTHER_AUDIENCE)["access_token"]
    assert unverified(other, 1)["aud"] == OTHER_AUDIENCE  # a valid token, just not for us

    result = await verifier.check(other)

    assert isinstance(result, OidcRejected)
    assert "audience 'urn:other'" in result.reason


async def test_algorithm_follows_the_issuers_allow_list(provider: OidcProvider) -> None:
    es_token = client_credentials_token(
        provider.discovery(), MACHINE_CLIENT_ID, MACHINE_CLIENT_SECRET, ES256_AUDIENCE
    )["access_token"]
    assert unverified(es_token, 0)["alg"] == "ES256"

    rs_only = OidcVerifier([provider.issuer_config(audience=ES256_AUDIENCE)])
    refused = await rs_only.check(es_token)
    assert isinstance(refused, OidcRejected) and "ES256 is not allowed" in refused.reason

    with_es = OidcVerifier([provider.issuer_config(audience=ES256_AUDIENCE, algorithms=("ES256",))])
    assert isinstance(await with_es.check(es_token), OidcAccepted)


async def test_rotated_signing_key_is_fetched(tmp_path: Path) -> None:
    with running_provider(tmp_path) as provider:
        fetched = CountingFetch([])
        skew = [0.0]
        verifier = OidcVerifier(
            [provider.issuer_config()], fetch_json=fetched, clock=lambda: time.time() + skew[0]
        )
        old = provider.machine_token()["access_token"]
        assert await verifier.verify(old) is not None
        jwks_reads = [url for url in fetched.urls if url.endswith("/jwks")]
        assert len(jwks_reads) == 1

        provider.rotate_keys()
        new = provider.machine_token()["access_token"]
        assert unverified(new, 0)["kid"] != unverified(old, 0)["kid"]
        skew[0] = provider.issuer_config().jwks_min_refresh_seconds  # refetch allowed again

        identity = await verifier.verify(new)

        assert identity is not None and identity.subject == MACHINE_CLIENT_ID
        assert [url for url in fetched.urls if url.endswith("/jwks")] == jwks_reads * 2
        assert await verifier.verify(old) is not None  # the old key is still published
        assert len(fetched.urls) == 4  # discovery + JWKS, twice; nothing more


async def test_device_flow_end_to_end(provider: OidcProvider) -> None:
    discovery = discover(provider.issuer)
    code = start_device_flow(discovery, DEVICE_CLIENT_ID, DEVICE_SCOPE)
    assert code.verification_uri_complete is not None
    assert code.user_code in code.verification_uri_complete

    provider.approve_device(code.verification_uri_complete, login="bob")
    tokens = poll_for_token(
        discovery, DEVICE_CLIENT_ID, code.device_code, code.interval, time.monotonic() + 60
    )

    verifier = OidcVerifier([provider.issuer_config()])
    identity = await verifier.verify(tokens["access_token"])
    assert identity is not None
    assert (identity.subject, identity.groups) == ("bob", ACCOUNT_GROUPS["bob"])
    # The id_token is signed by the same provider but is meant for the CLI, not hoopd.
    id_token = await verifier.check(tokens["id_token"])
    assert isinstance(id_token, OidcRejected)
    assert f"audience '{DEVICE_CLIENT_ID}'" in id_token.reason


def test_device_flow_waits_while_the_user_decides(provider: OidcProvider) -> None:
    discovery = discover(provider.issuer)
    code = start_device_flow(discovery, DEVICE_CLIENT_ID, DEVICE_SCOPE)
    assert code.verification_uri_complete is not None
    uri = code.verification_uri_complete
    waits: list[float] = []

    def user_approves_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        provider.approve_device(uri, login="alice")

    tokens = poll_for_token(
        discovery,
        DEVICE_CLIENT_ID,
        code.device_code,
        code.interval,
        time.monotonic() + 60,
        sleep=user_approves_meanwhile,
    )

    assert waits == [code.interval]  # one authorization_pending, then the token
    assert unverified(tokens["access_token"], 1)["groups"] == list(ACCOUNT_GROUPS["alice"])


def test_device_flow_denied_by_the_user(provider: OidcProvider) -> None:
    discovery = discover(provider.issuer)
    code = start_device_flow(discovery, DEVICE_CLIENT_ID, DEVICE_SCOPE)
    assert code.verification_uri_complete is not None
    uri = code.verification_uri_complete

    with pytest.raises(DeviceFlowError, match="denied") as denied:
        poll_for_token(
            discovery,
            DEVICE_CLIENT_ID,
            code.device_code,
            code.interval,
            time.monotonic() + 60,
            sleep=lambda _seconds: provider.deny_device(uri),
        )
    assert denied.value.error == "access_denied"


def test_device_flow_gives_up_at_the_deadline(provider: OidcProvider) -> None:
    discovery = discover(provider.issuer)
    code = start_device_flow(discovery, DEVICE_CLIENT_ID, DEVICE_SCOPE)
    now = [0.0]

    def time_passes(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(DeviceFlowError, match="expired") as expired:
        poll_for_token(
            discovery,
            DEVICE_CLIENT_ID,
            code.device_code,
            code.interval,
            deadline=12.0,
            sleep=time_passes,
            clock=lambda: now[0],
        )
    assert expired.value.error == "expired_token"
    assert now[0] == 15.0  # polled at 0, 5 and 10 s; not after the deadline


def test_client_credentials_with_a_wrong_secret_is_refused(provider: OidcProvider) -> None:
    with pytest.raises(DeviceFlowError) as refused:
        client_credentials_token(provider.discovery(), MACHINE_CLIENT_ID, "wrong secret")
    assert refused.value.error == "invalid_client"
    assert "wrong secret" not in str(refused.value)


def test_discovery_must_name_the_issuer_asked_for(provider: OidcProvider) -> None:
    with pytest.raises(DeviceFlowError, match="names issuer"):
        discover(provider.issuer + "/")


def test_slow_down_lengthens_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    # oidc-provider never answers slow_down, so the token endpoint's answers are
    # scripted here; everything else is the real polling loop.
    answers = iter(
        [
            (400, {"error": "slow_down"}),
            (400, {"error": "authorization_pending"}),
            (200, {"access_token": "at", "token_type": "Bearer"}),
        ]
    )
    monkeypatch.setattr(device_flow, "request_json", lambda *_a, **_k: next(answers))
    waits: list[float] = []

    tokens = poll_for_token(
        {"token_endpoint": "https://idp.example.test/token"},
        DEVICE_CLIENT_ID,
        "device-code",
        5.0,
        time.monotonic() + 60,
        sleep=waits.append,
    )

    assert tokens["access_token"] == "at"
    assert waits == [10.0, 10.0]
