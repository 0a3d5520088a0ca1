"""Gateway tokens: what the verifier accepts, what it refuses, and the signing keys
(rotation, the JWKS, file permissions, several processes on one directory)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jose import jwt

from hoopd.config_identity import IdentityConfig
from hoopd.identity.base import Identity
from hoopd.tokens.claims import claims_for
from hoopd.tokens.keys import KeyRing
from hoopd.tokens.store import TokenStore
from hoopd.tokens.verifier import GatewayTokenVerifier
from tests.unit.test_token_exchange import run_cli, write_config

CONFIG = IdentityConfig(issuer="hoopd-test", max_ttl_seconds=3600)
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def identity(**changes: Any) -> Identity:
    fields: dict[str, Any] = {
        "subject": "alice",
        "groups": ("dba", "oncall"),
        "token_id": "gt:abcdefghijklmnopqrstuv",
        "actor_chain": ("planner", "sql-agent"),
        "scope": ("db:read", "pg-*:write"),
        "expires_at": NOW + 600,
        "issuer": "hoopd",
        "lineage": ("st:0123456789ab", "gt:parent-0000000000000"),
        "issued_at": NOW,
    }
    fields.update(changes)
    return Identity(**fields)


def sign(keys: KeyRing, who: Identity, **claim_changes: Any) -> str:
    key = keys.signing_key()
    claims = claims_for(who, CONFIG.issuer) | claim_changes
    return jwt.encode(claims, key.private_pem, algorithm="ES256", headers={"kid": key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> KeyRing:
    return KeyRing(tmp_path, max_ttl_seconds=CONFIG.max_ttl_seconds, clock=clock)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore.open(tmp_path, clock=clock)


@pytest.fixture
def verifier(keys: KeyRing, store: TokenStore, clock: Clock) -> GatewayTokenVerifier:
    return GatewayTokenVerifier(keys, CONFIG, store, clock=clock)


async def test_a_signed_token_gives_back_its_identity(
    keys: KeyRing, verifier: GatewayTokenVerifier
) -> None:
    who = identity()
    token = sign(keys, who)
    assert await verifier.verify(token) == who
    assert verifier.lookup(token) == who
    claims = jwt.get_unverified_claims(token)
    # RFC 8693 section 4.1: the outermost act is the actor calling now.
    assert claims["act"] == {"sub": "sql-agent", "act": {"sub": "planner"}}
    assert claims["scope"] == "db:read pg-*:write"
    assert claims["jti"] == "abcdefghijklmnopqrstuv"
    assert (claims["iss"], claims["aud"]) == ("hoopd-test", "hoopd-test")


def test_a_root_token_has_no_act_and_no_lineage(
    keys: KeyRing, verifier: GatewayTokenVerifier
) -> None:
    who = identity(actor_chain=(), lineage=())
    token = sign(keys, who)
    assert verifier.lookup(token) == who
    assert {"act", "hoopd_lineage"}.isdisjoint(jwt.get_unverified_claims(token))


def test_a_tampered_token_is_refused(keys: KeyRing, verifier: GatewayTokenVerifier) -> None:
    token = sign(keys, identity())
    header, payload, signature = token.split(".")
    claims = jwt.get_unverified_claims(token) | {"scope": "*:admin"}
    widened = b64(json.dumps(claims).encode())
    assert verifier.lookup(f"{header}.{widened}.{signature}") is None
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert verifier.lookup(f"{header}.{payload}.{flipped}") is None


def test_hs256_signed_with_the_public_key_is_refused(
    keys: KeyRing, verifier: GatewayTokenVerifier
) -> None:
    key = keys.signing_key()
    claims = claims_for(identity(), CONFIG.issuer)
    for alg in ("HS256", "none"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": key.kid}).encode())
        payload = b64(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        mac = hmac.new(key.public_pem.encode(), signing_input, hashlib.sha256).digest()
        signature = b64(mac) if alg == "HS256" else ""
        assert verifier.lookup(f"{header}.{payload}.{signature}") is None


def test_expiry_is_exact_and_not_before_has_a_30_second_leeway(
    keys: KeyRing, verifier: GatewayTokenVerifier, clock: Clock
) -> None:
    token = sign(keys, identity(expires_at=NOW + 600))
    clock.now = NOW + 599.9
    assert verifier.lookup(token) is not None
    clock.now = NOW + 600
    assert verifier.lookup(token) is None

    early = sign(keys, identity(), nbf=int(NOW + 100))
    clock.now = NOW + 69
    assert verifier.lookup(early) is None
    clock.now = NOW + 70
    assert verifier.lookup(early) is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"aud": ["someone-else"]},
        {"iss": "someone-else"},
        {"scope": ""},
        {"scope": "db:delete"},
        {"act": {"sub": "x", "extra": 1}},
        {"exp": "soon"},
        {"jti": "short"},
    ],
)
def test_claims_for_another_audience_issuer_or_in_bad_shape_are_refused(
    keys: KeyRing, verifier: GatewayTokenVerifier, changes: dict[str, Any]
) -> None:
    assert verifier.lookup(sign(keys, identity())) is not None
    assert verifier.lookup(sign(keys, identity(), **changes)) is None


def test_an_audience_list_naming_this_issuer_is_accepted(
    keys: KeyRing, verifier: GatewayTokenVerifier
) -> None:
    assert verifier.lookup(sign(keys, identity(), aud=["other", "hoopd-test"])) is not None


def test_a_key_of_another_ring_is_unknown(tmp_path: Path, verifier: GatewayTokenVerifier) -> None:
    stranger = KeyRing(tmp_path / "elsewhere", max_ttl_seconds=3600)
    assert verifier.lookup(sign(stranger, identity())) is None


@pytest.mark.parametrize(
    "token", ["", "a.b.c", "not a token", "e30.e30.", "x" * 100_000, "\udcff.\ud800.x"]
)
def test_garbage_is_refused_without_raising(verifier: GatewayTokenVerifier, token: str) -> None:
    assert verifier.lookup(token) is None


def test_rotation_keeps_old_tokens_valid_until_they_must_have_expired(
    tmp_path: Path, keys: KeyRing, verifier: GatewayTokenVerifier, clock: Clock
) -> None:
    old_token = sign(keys, identity(expires_at=NOW + 3600))
    old_kid = keys.signing_key().kid
    new_key, retired = keys.rotate()
    assert retired == [] and new_key.kid != old_kid
    assert keys.signing_key() == new_key
    new_token = sign(keys, identity())
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert verifier.lookup(old_token) is not None
    assert verifier.lookup(new_token) is not None
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old_kid, new_key.kid}

    # A token signed just before the rotation lives at most max_ttl after it.
    clock.now = NOW + 3600 + 29
    _, retired = keys.rotate()
    assert retired == []
    clock.now = NOW + 3600 + 31
    _, retired = keys.rotate()
    assert retired == [old_kid]
    assert old_kid not in {k["kid"] for k in keys.jwks()["keys"]}
    assert not (tmp_path / "keys" / f"{old_kid}.json").exists()


def test_a_rotation_by_another_process_is_seen(
    tmp_path: Path, keys: KeyRing, verifier: GatewayTokenVerifier
) -> None:
    first = keys.signing_key()
    other_process = KeyRing(tmp_path, max_ttl_seconds=3600)
    rotated, _ = other_process.rotate()
    assert verifier.lookup(sign(other_process, identity())) is not None
    assert keys.signing_key().kid == rotated.kid != first.kid


def test_the_first_key_is_made_on_first_use_and_kept_private(tmp_path: Path, keys: KeyRing) -> None:
    assert not (tmp_path / "keys").exists()
    key = keys.signing_key()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    files = list((tmp_path / "keys").iterdir())
    assert [f.name for f in files] == [f"{key.kid}.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert keys.signing_key() == key
    assert key.private_pem not in repr(key)


def test_the_jwks_holds_public_keys_only(keys: KeyRing) -> None:
    (jwk,) = keys.jwks()["keys"]
    assert jwk["kid"] == keys.signing_key().kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}  # no private "d"


def test_a_revoked_token_or_ancestor_is_refused(
    keys: KeyRing, store: TokenStore, verifier: GatewayTokenVerifier, clock: Clock
) -> None:
    who = identity()
    token = sign(keys, who)
    sibling = sign(keys, identity(token_id="gt:sibling-0000000000000"))
    store.revoke_token(who.token_id, "ops", "")
    assert verifier.lookup(token) is None
    assert verifier.lookup(sibling) is not None

    store.revoke_token("st:0123456789ab", "ops", "")  # the root both came from
    assert verifier.lookup(sibling) is None

    store.revoke_actor("sql-agent", "ops", "")
    clock.now += 1
    fresh_root = identity(token_id="gt:fresh-000000000000000", lineage=(), issued_at=clock.now)
    assert verifier.lookup(sign(keys, fresh_root)) is not None
    assert (
        verifier.lookup(sign(keys, identity(token_id="gt:agent-00000000000000", lineage=())))
        is None
    )


def test_hoopd_keys_rotate_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    assert run_cli(["keys", "list", "--config", config]) == 0
    assert "No signing keys yet" in capsys.readouterr().out
    assert run_cli(["keys", "rotate", "--config", config]) == 0
    assert run_cli(["keys", "rotate", "--config", config]) == 0
    capsys.readouterr()
    assert run_cli(["keys", "list", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    ring = KeyRing(tmp_path / "data", max_ttl_seconds=3600)
    assert [line.split()[0] for line in lines] == [info.kid for info in ring.list()]
    assert "verifying; retires after" in lines[0] and lines[1].endswith("signing")
    assert ring.signing_key().private_pem not in "".join(lines)


def test_processes_rotating_at_once_leave_only_whole_keys(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from hoopd.tokens.keys import KeyRing\n"
        "ring = KeyRing(Path(sys.argv[1]), max_ttl_seconds=3600)\n"
        "for _ in range(5): ring.rotate()\n"
    )
    root = Path(__file__).resolve().parents[2]
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root) for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0] * 4
    ring = KeyRing(tmp_path, max_ttl_seconds=3600)
    assert len(ring.list()) == 20
    assert not [p for p in (tmp_path / "keys").iterdir() if not p.name.endswith(".json")]
    verifier = GatewayTokenVerifier(ring, CONFIG, TokenStore.open(tmp_path))
    assert verifier.lookup(sign(ring, identity(expires_at=4e9, issued_at=time.time()))) is not None
