"""OIDC access-token verification with real keys and real signatures; only the
issuer's HTTP endpoints (discovery and JWKS) are stood in for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from jose import jwt as jose_jwt

from hoopd.config_identity import OidcIssuerConfig
from hoopd.identity.base import Identity, TokenVerifier
from hoopd.identity.http_json import MAX_DOCUMENT_BYTES, fetch_json_url, url_allowed
from hoopd.identity.oidc import (
    LEEWAY_SECONDS,
    MAX_TOKEN_CHARS,
    OidcAccepted,
    OidcRejected,
    OidcVerifier,
)

NOW = 1_800_000_000.0
ISSUER = "https://idp.example.test/realms/corp"
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
JWKS_URL = "https://keys.example.test/corp/jwks"
AUDIENCE = "urn:hoopd"

CONFIG = OidcIssuerConfig(
    name="corp",
    issuer=ISSUER,
    audience=AUDIENCE,
    algorithms=("RS256", "ES256", "PS256"),
    scope=("app:read",),
    group_scopes=MappingProxyType({"dba": ("app:admin", "app:read"), "oncall": ("*:read",)}),
    jwks_min_refresh_seconds=30.0,
    jwks_max_age_seconds=3600.0,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64int(value: int, size: int | None = None) -> str:
    return b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Key:
    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {
                "kty": "RSA",
                "kid": self.kid,
                "use": "sig",
                "n": b64int(numbers.n),
                "e": b64int(numbers.e),
            }
        point = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[public.curve.key_size]
        return {
            "kty": "EC",
            "kid": self.kid,
            "crv": crv,
            "x": b64int(point.x, size),
            "y": b64int(point.y, size),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


RSA_KEY = Key("rsa-1", rsa.generate_private_key(65537, 2048))
RSA_NEXT = Key("rsa-2", rsa.generate_private_key(65537, 2048))
EC_KEY = Key("ec-1", ec.generate_private_key(ec.SECP256R1()))
EC384_KEY = Key("ec-384", ec.generate_private_key(ec.SECP384R1()))
ATTACKER = Key("rsa-1", rsa.generate_private_key(65537, 2048))  # same kid, other key


_DIGESTS: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def sign(key: Key | None, alg: str, signing_input: bytes, secret: bytes = b"") -> bytes:
    if alg == "none":
        return b""
    digest = _DIGESTS[alg[-3:]]()
    if alg.startswith("HS"):
        return hmac.new(secret, signing_input, digest.name).digest()
    assert key is not None
    private = key.private
    if isinstance(private, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(padding.MGF1(digest), digest.digest_size)
        )
        return private.sign(signing_input, pad, digest)
    r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(digest)))
    size = (private.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


DROP = object()


def claims(**overrides: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": NOW + 600,
        "iat": NOW - 10,
        "jti": "tok-1",
        "groups": ["dba", "oncall"],
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not DROP}


def token(
    key: Key | None = RSA_KEY,
    alg: str = "RS256",
    body: Mapping[str, Any] | None = None,
    *,
    header: Mapping[str, Any] | None = None,
    secret: bytes = b"",
) -> str:
    head = {"alg": alg, "typ": "at+jwt", **({"kid": key.kid} if key else {}), **(header or {})}
    signing_input = (
        b64(json.dumps(head).encode()) + "." + b64(json.dumps(body or claims()).encode())
    )
    return signing_input + "." + b64(sign(key, alg, signing_input.encode(), secret))


@dataclass
class FakeIdp:
    """The issuer's discovery and JWKS endpoints, counting every read."""

    keys: list[Key] = field(default_factory=lambda: [RSA_KEY, EC_KEY])
    discovery_issuer: str = ISSUER
    down: bool = False
    fetched: list[str] = field(default_factory=list)

    async def __call__(self, url: str, ca_file: Path | None) -> Any:
        self.fetched.append(url)
        await trio.sleep(0.01)  # a real read takes time: other tasks run meanwhile
        if self.down:
            raise OSError("connection refused")
        if url == DISCOVERY_URL:
            return {"issuer": self.discovery_issuer, "jwks_uri": JWKS_URL}
        if url == JWKS_URL:
            return {"keys": [key.public_jwk() for key in self.keys]}
        raise AssertionError(f"unexpected fetch of {url}")

    @property
    def jwks_reads(self) -> int:
        return self.fetched.count(JWKS_URL)


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    idp: FakeIdp
    clock: Clock
    verifier: OidcVerifier


def make(config: OidcIssuerConfig = CONFIG, idp: FakeIdp | None = None) -> Setup:
    idp = idp or FakeIdp()
    clock = Clock()
    return Setup(idp, clock, OidcVerifier([config], fetch_json=idp, clock=clock))


async def accepted(verifier: OidcVerifier, tok: str) -> Identity:
    result = await verifier.check(tok)
    assert isinstance(result, OidcAccepted), result
    assert await verifier.verify(tok) == result.identity
    return result.identity


async def rejected(verifier: OidcVerifier, tok: str) -> str:
    """The reason ``tok`` is refused; ``verify`` must agree, and the reason must not
    leak the token or its signature."""
    result = await verifier.check(tok)
    assert isinstance(result, OidcRejected), result
    assert await verifier.verify(tok) is None
    assert tok not in result.reason
    if tok.count(".") == 2 and len(tok.rsplit(".", 1)[1]) > 8:
        assert tok.rsplit(".", 1)[1] not in result.reason
    return result.reason


# -- accepted tokens -------------------------------------------------------------------


async def test_valid_token_gives_the_mapped_identity() -> None:
    s = make()
    as_protocol: TokenVerifier = s.verifier
    identity = await as_protocol.verify(token())
    assert identity == Identity(
        subject="alice",
        groups=("dba", "oncall"),
        token_id="oidc:corp:tok-1",
        scope=("app:read", "app:admin", "*:read"),  # issuer scope, then each group's, once
        expires_at=NOW + 600,
        issuer="corp",
        issued_at=NOW - 10,
    )


@pytest.mark.parametrize(
    ("key", "alg"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256"), (RSA_KEY, "PS256")]
)
async def test_every_allowed_algorithm_with_a_fitting_key_is_accepted(key: Key, alg: str) -> None:
    identity = await accepted(make().verifier, token(key, alg))
    assert identity.subject == "alice"


async def test_token_signed_by_python_jose_is_accepted() -> None:
    # An independent signer: the verifier does not merely agree with our test helper.
    pem = RSA_KEY.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tok = jose_jwt.encode(claims(), pem.decode(), algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await accepted(make().verifier, tok)).token_id == "oidc:corp:tok-1"


async def test_claims_mapping_variants() -> None:
    config = replace(CONFIG, subject_claim="preferred_username", groups_claim="roles", scope=())
    verifier = make(config).verifier
    body = claims(preferred_username="alice@corp", roles="oncall  oncall dev", jti=DROP, iat=DROP)
    tok = token(body=body)
    identity = await accepted(verifier, tok)
    assert identity.subject == "alice@corp"
    assert identity.groups == ("oncall", "dev")
    assert identity.scope == ("*:read",)
    assert identity.issued_at == 0.0
    assert identity.token_id == "oidc:corp:" + hashlib.sha256(tok.encode()).hexdigest()[:16]
    no_groups = await accepted(verifier, token(body=claims(preferred_username="bob")))
    assert no_groups.groups == () and no_groups.scope == ()  # never None: not unrestricted


async def test_audience_may_be_a_list_containing_ours() -> None:
    identity = await accepted(make().verifier, token(body=claims(aud=["urn:other", AUDIENCE])))
    assert identity.subject == "alice"


async def test_time_claims_allow_the_leeway_and_no_more() -> None:
    s = make()
    assert await accepted(s.verifier, token(body=claims(exp=NOW - LEEWAY_SECONDS + 1)))
    assert await accepted(s.verifier, token(body=claims(nbf=NOW + LEEWAY_SECONDS - 1)))
    assert await accepted(s.verifier, token(body=claims(iat=NOW + LEEWAY_SECONDS - 1)))
    assert await rejected(s.verifier, token(body=claims(exp=NOW - LEEWAY_SECONDS))) == "expired"


# -- rejected tokens -------------------------------------------------------------------


async def test_alg_none_is_rejected() -> None:
    s = make()
    assert "never accepted" in await rejected(s.verifier, token(RSA_KEY, "none"))
    assert "never accepted" in await rejected(s.verifier, token(None, "none"))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_signed_with_the_public_key_is_rejected(alg: str) -> None:
    # Key confusion: an attacker who knows the RSA public key uses it as the HMAC
    # secret. Refused even if the configuration (built here bypassing the loader's
    # checks) lists the HMAC algorithm.
    config = replace(CONFIG, algorithms=("RS256", alg))
    s = make(config)
    forged = token(RSA_KEY, alg, secret=RSA_KEY.public_pem())
    assert "never accepted" in await rejected(s.verifier, forged)
    assert s.idp.fetched == []  # refused before any key was looked at


async def test_algorithm_outside_the_issuers_allow_list_is_rejected() -> None:
    s = make(replace(CONFIG, algorithms=("RS256",)))
    reason = await rejected(s.verifier, token(EC_KEY, "ES256"))
    assert "not allowed for issuer corp" in reason
    assert s.idp.fetched == []


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [
        (RSA_KEY, "ES256", "rsa-1"),  # an RSA key cannot verify ECDSA
        (EC_KEY, "RS256", "ec-1"),  # nor an EC key RSA
        (EC_KEY, "ES384", "ec-1"),  # ES384 needs a P-384 key
    ],
)
async def test_key_must_fit_the_algorithm(key: Key, alg: str, kid: str) -> None:
    s = make(replace(CONFIG, algorithms=("RS256", "ES256", "ES384")))
    reason = await rejected(s.verifier, token(key, alg, header={"kid": kid}))
    assert "no key of issuer corp fits" in reason


async def test_expired_and_missing_exp_are_rejected() -> None:
    s = make()
    assert await rejected(s.verifier, token(body=claims(exp=NOW - 3600))) == "expired"
    assert "exp is missing" in await rejected(s.verifier, token(body=claims(exp=DROP)))
    assert "exp is missing" in await rejected(s.verifier, token(body=claims(exp="tomorrow")))


async def test_not_yet_valid_is_rejected() -> None:
    s = make()
    assert "nbf" in await rejected(s.verifier, token(body=claims(nbf=NOW + 120)))
    assert "iat" in await rejected(s.verifier, token(body=claims(iat=NOW + 120)))
    s.clock.now = NOW + 120
    assert await accepted(s.verifier, token(body=claims(nbf=NOW + 120)))


@pytest.mark.parametrize(
    "aud", ["urn:other", ["urn:other"], [], None, "URN:HOOPD", f"{AUDIENCE} x"]
)
async def test_wrong_audience_is_rejected(aud: object) -> None:
    body = claims(aud=DROP) if aud is None else claims(aud=aud)
    assert "audience" in await rejected(make().verifier, token(body=body))


async def test_unconfigured_issuer_is_rejected_without_fetching() -> None:
    s = make()
    for iss in ["https://evil.example.test", ISSUER + "/", None, 42]:
        body = claims(iss=DROP) if iss is None else claims(iss=iss)
        assert (await rejected(s.verifier, token(body=body))).startswith("unknown issuer")
    assert s.idp.fetched == []


async def test_configured_issuer_signed_by_another_key_is_rejected() -> None:
    # The attacker names our issuer and even a published kid, but holds another key.
    s = make()
    assert await rejected(s.verifier, token(ATTACKER)) == "bad signature"


async def test_tampered_payload_is_rejected() -> None:
    s = make()
    good = token(body=claims(groups=["dev"]))
    head, _, sig = good.split(".")
    forged_body = b64(json.dumps(claims(groups=["dba"])).encode())
    assert await rejected(s.verifier, f"{head}.{forged_body}.{sig}") == "bad signature"
    assert (
        await rejected(s.verifier, f"{head}.{good.split('.')[1]}.{sig[:-4]}AAAA") == "bad signature"
    )
    assert await accepted(s.verifier, good)


async def test_missing_or_empty_subject_is_rejected() -> None:
    s = make()
    for sub in [DROP, "", 7, ["alice"]]:
        assert "subject claim 'sub'" in await rejected(s.verifier, token(body=claims(sub=sub)))


async def test_groups_claim_of_the_wrong_shape_is_rejected() -> None:
    s = make()
    for groups in [{"dba": True}, ["dba", 1], 5]:
        assert "groups claim" in await rejected(s.verifier, token(body=claims(groups=groups)))


async def test_critical_header_extensions_are_rejected() -> None:
    assert "critical" in await rejected(make().verifier, token(header={"crit": ["exp"]}))


async def test_duplicate_claim_names_are_rejected() -> None:
    head = b64(json.dumps({"alg": "RS256", "kid": "rsa-1"}).encode())
    body = json.dumps(claims()).rstrip("}") + ', "sub": "root"}'
    signing_input = f"{head}.{b64(body.encode())}"
    tok = signing_input + "." + b64(sign(RSA_KEY, "RS256", signing_input.encode()))
    assert "not JSON" in await rejected(make().verifier, tok)


async def test_overlong_token_is_rejected_before_parsing() -> None:
    s = make()
    long = token(body=claims(pad="x" * MAX_TOKEN_CHARS))
    assert "too long" in await rejected(s.verifier, long)
    assert s.idp.fetched == []


# -- the issuer's keys -----------------------------------------------------------------


async def test_keys_are_read_once_and_cached() -> None:
    s = make()
    for _ in range(5):
        await accepted(s.verifier, token())
    assert s.idp.fetched == [DISCOVERY_URL, JWKS_URL]


async def test_unknown_kid_refetches_once_then_is_rate_limited() -> None:
    s = make()
    await accepted(s.verifier, token())
    assert s.idp.jwks_reads == 1
    s.clock.now += 1  # past the first read's instant, well within min refresh
    for i in range(50):
        assert "fits RS256" in await rejected(s.verifier, token(header={"kid": f"random-{i}"}))
    assert s.idp.jwks_reads == 1  # the first read was < 30 s ago: no refetch at all

    s.clock.now += CONFIG.jwks_min_refresh_seconds
    for i in range(50):
        await rejected(s.verifier, token(header={"kid": f"random-{i}"}))
    assert s.idp.jwks_reads == 2  # one refetch for the whole flood

    # A key the issuer really rotated in is found at the next allowed refetch.
    s.idp.keys.append(RSA_NEXT)
    assert "fits RS256" in await rejected(s.verifier, token(RSA_NEXT))
    s.clock.now += CONFIG.jwks_min_refresh_seconds
    assert await accepted(s.verifier, token(RSA_NEXT, body=claims(exp=s.clock.now + 60)))
    assert s.idp.jwks_reads == 3


async def test_concurrent_tokens_share_one_read() -> None:
    s = make()
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(accepted, s.verifier, token())
    assert s.idp.jwks_reads == 1


async def test_old_keys_are_reread_and_not_used_when_the_reread_fails() -> None:
    s = make()
    await accepted(s.verifier, token())
    s.clock.now += CONFIG.jwks_max_age_seconds
    await accepted(s.verifier, token(body=claims(exp=s.clock.now + 60)))
    assert s.idp.jwks_reads == 2

    s.clock.now += CONFIG.jwks_max_age_seconds
    s.idp.down = True
    reason = await rejected(s.verifier, token(body=claims(exp=s.clock.now + 60)))
    assert reason == "cannot read the keys of issuer corp: connection refused"
    reads = len(s.idp.fetched)
    assert "unavailable" in await rejected(s.verifier, token(body=claims(exp=s.clock.now + 60)))
    assert len(s.idp.fetched) == reads  # a failed read is not retried at once either

    s.idp.down = False
    s.clock.now += CONFIG.jwks_min_refresh_seconds
    assert await accepted(s.verifier, token(body=claims(exp=s.clock.now + 60)))


async def test_discovery_naming_another_issuer_is_rejected() -> None:
    s = make(idp=FakeIdp(discovery_issuer="https://evil.example.test"))
    reason = await rejected(s.verifier, token())
    assert "names issuer 'https://evil.example.test'" in reason
    assert s.idp.fetched == [DISCOVERY_URL]  # its jwks_uri was never followed


async def test_unusable_published_keys_are_ignored() -> None:
    small = Key("rsa-small", rsa.generate_private_key(65537, 1024))
    idp = FakeIdp(keys=[small, RSA_KEY])
    verifier = make(idp=idp).verifier
    assert "fits RS256" in await rejected(verifier, token(small))  # under 2048 bits
    assert await accepted(verifier, token(RSA_KEY))


def test_an_issuer_url_configured_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="configured twice"):
        OidcVerifier([CONFIG, replace(CONFIG, name="corp2", audience="urn:x")])


# -- anything at all -------------------------------------------------------------------

_GARBAGE_VERIFIER = OidcVerifier([CONFIG], fetch_json=FakeIdp(), clock=Clock())

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def jwt_shaped(draw: st.DrawFn) -> str:
    header = draw(st.dictionaries(st.sampled_from(["alg", "kid", "crit", "typ"]), _json_values))
    if draw(st.booleans()):
        header["alg"] = draw(st.sampled_from(["RS256", "ES256", "PS256", "HS256", "none"]))
        header["kid"] = draw(st.sampled_from(["rsa-1", "ec-1", "other"]))
    body = draw(
        st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "groups"]), _json_values)
    )
    if draw(st.booleans()):
        body.update(iss=ISSUER, aud=AUDIENCE, exp=NOW + 60)
    signature = draw(st.binary(max_size=300))
    parts = [json.dumps(header).encode(), json.dumps(body).encode(), signature]
    return ".".join(b64(part) for part in parts)


@settings(max_examples=300, deadline=None)
@given(st.text() | jwt_shaped() | st.text(alphabet="ab.-_=", max_size=40))
def test_anything_is_refused_without_an_exception(text: str) -> None:
    assert trio.run(_GARBAGE_VERIFIER.verify, text) is None


# -- the default fetcher ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://idp.example.test/jwks", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://[::1]:8080/jwks", True),
        ("http://localhost/jwks", True),
        ("http://idp.example.test/jwks", False),
        ("http://10.0.0.1/jwks", False),
        ("file:///etc/passwd", False),
        ("https:///jwks", False),
    ],
)
def test_only_https_or_loopback_http_is_fetched(url: str, allowed: bool) -> None:
    assert url_allowed(url) is allowed


async def test_default_fetcher_refuses_plain_http_elsewhere() -> None:
    with pytest.raises(ValueError, match="not https"):
        await fetch_json_url("http://idp.example.test/.well-known/openid-configuration", None)


class _Documents(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, status = {
            "/ok": (b'{"issuer": "x"}', 200),
            "/big": (b"[" + b"0," * (MAX_DOCUMENT_BYTES // 2) + b"0]", 200),
            "/gone": (b'{"error": "not_found"}', 404),
            "/html": (b"<html></html>", 200),
        }[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def documents() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Documents)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def test_default_fetcher_reads_json_and_refuses_the_rest(documents: str) -> None:
    assert await fetch_json_url(documents + "/ok", None) == {"issuer": "x"}
    with pytest.raises(ValueError, match="more than"):
        await fetch_json_url(documents + "/big", None)
    with pytest.raises(ValueError, match="HTTP 404"):
        await fetch_json_url(documents + "/gone", None)
    with pytest.raises(ValueError, match="not JSON"):
        await fetch_json_url(documents + "/html", None)
