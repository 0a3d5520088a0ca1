"""OpenID Connect access tokens: JWTs from the configured issuers, checked against the
keys each issuer publishes.

Guarantees of :class:`OidcVerifier`:

* a token is accepted only if its ``iss`` is a configured issuer, its header ``alg``
  is in that issuer's allow-list (never ``none``, never an HMAC algorithm), and its
  signature verifies with a published key whose type and curve fit the algorithm:
  a public key can never serve as an HMAC secret;
* keys come only from the ``jwks_uri`` of the discovery document at
  ``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must equal the
  configured one; ``jku``, ``x5u`` and ``jwk`` headers are never followed;
* ``aud`` must name the configured audience, ``exp`` is required, and ``exp``,
  ``nbf`` and ``iat`` are checked with :data:`LEEWAY_SECONDS` of clock skew;
* an unknown ``kid`` makes the keys be read again at most once per
  ``jwks_min_refresh_seconds`` per issuer, whatever arrives; keys older than
  ``jwks_max_age_seconds`` are read again and, if that fails, not used;
* ``verify`` never raises for bad input; rejection reasons (from ``check``) never
  contain the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from hoopd.config_identity import SIGNING_ALGORITHMS, OidcIssuerConfig
from hoopd.identity.base import Identity
from hoopd.identity.http_json import fetch_json_url, url_allowed

LEEWAY_SECONDS: Final = 30.0
MAX_TOKEN_CHARS: Final = 16 * 1024
MAX_KEYS: Final = 64
MIN_RSA_BITS: Final = 2048
TOKEN_ID_PREFIX: Final = "oidc:"

FetchJson = Callable[[str, Path | None], Awaitable[Any]]
"""Reads a URL and returns its parsed JSON; raises on any failure."""

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: Final[Mapping[str, tuple[str, type[ec.EllipticCurve]]]] = {
    "ES256": ("P-256", ec.SECP256R1),
    "ES384": ("P-384", ec.SECP384R1),
    "ES512": ("P-521", ec.SECP521R1),
}
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_JTI = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class OidcAccepted:
    identity: Identity


@dataclass(frozen=True, slots=True)
class OidcRejected:
    """Why a token was refused: safe to log (it never contains the token)."""

    reason: str


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    alg: str | None
    key: PublicKey


class OidcVerifier:
    """A :class:`~hoopd.identity.base.TokenVerifier` for the access tokens of the
    ``[[oidc.issuers]]``.

    Raises ``ValueError`` at construction if two issuers share one issuer URL (a
    token could not say which configuration applies to it).
    """

    def __init__(
        self,
        issuers: Sequence[OidcIssuerConfig],
        *,
        fetch_json: FetchJson | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        fetch = fetch_json or fetch_json_url
        self._issuers: dict[str, _IssuerKeys] = {}
        for config in issuers:
            if config.issuer in self._issuers:
                raise ValueError(f"issuer {config.issuer!r} is configured twice")
            self._issuers[config.issuer] = _IssuerKeys(config, fetch, clock)

    async def verify(self, token: str) -> Identity | None:
        """The identity ``token`` stands for, or ``None`` if it is not accepted."""
        result = await self.check(token)
        return result.identity if isinstance(result, OidcAccepted) else None

    async def check(self, token: str) -> OidcAccepted | OidcRejected:
        """Accept ``token`` or say why not; never raises for bad input."""
        try:
            return OidcAccepted(await self._check(token))
        except _Rejected as rejected:
            return OidcRejected(rejected.reason)

    async def _check(self, token: str) -> Identity:
        header, claims, signing_input, signature = _split(token)
        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Rejected(f"unknown issuer {_shown(iss)}")
        config = issuer.config
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in SIGNING_ALGORITHMS:
            raise _Rejected(f"algorithm {_shown(alg)} is never accepted")
        if alg not in config.algorithms:
            raise _Rejected(f"algorithm {alg} is not allowed for issuer {config.name}")
        if "crit" in header:
            raise _Rejected("critical header extensions are not supported")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _Rejected("kid is not text")
        candidates = [k for k in await issuer.keys_for(kid) if _fits(k, alg)]
        if not candidates:
            raise _Rejected(f"no key of issuer {config.name} fits {alg} and kid {_shown(kid)}")
        if not any(_signature_valid(k.key, alg, signing_input, signature) for k in candidates):
            raise _Rejected("bad signature")
        _check_times(claims, self._clock())
        _check_audience(claims, config.audience)
        return _identity(config, claims, token)


class _IssuerKeys:
    """One issuer's verification keys, read through its discovery document."""

    def __init__(
        self, config: OidcIssuerConfig, fetch: FetchJson, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._clock = clock
        self._keys: tuple[_Key, ...] = ()
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = trio.Lock()

    async def keys_for(self, kid: str | None) -> tuple[_Key, ...]:
        """The keys with this ``kid`` (every key when ``kid`` is None); may be empty.

        Raises _Rejected when no keys young enough to use can be had.
        """
        if self._fresh() and (found := self._matching(kid)):
            return found
        # One reader at a time, so a burst of tokens waiting on a refresh causes one.
        async with self._lock:
            if not self._fresh():
                await self._refresh()
            found = self._matching(kid)
            if not found and self._may_refresh():
                await self._refresh()
                found = self._matching(kid)
            return found

    def _fresh(self) -> bool:
        age = None if self._fetched_at is None else self._clock() - self._fetched_at
        return age is not None and 0 <= age < self.config.jwks_max_age_seconds

    def _may_refresh(self) -> bool:
        if self._attempted_at is None:
            return True
        since = self._clock() - self._attempted_at
        # A clock that went back must not block refreshes forever.
        return since >= self.config.jwks_min_refresh_seconds or since < 0

    def _matching(self, kid: str | None) -> tuple[_Key, ...]:
        return tuple(k for k in self._keys if kid is None or k.kid == kid)

    async def _refresh(self) -> None:
        name = self.config.name
        if not self._may_refresh():
            raise _Rejected(f"keys of issuer {name} unavailable (last read failed recently)")
        self._attempted_at = self._clock()
        try:
            keys = await self._read_keys()
        except _Rejected:
            raise
        except Exception as exc:  # any failure of the IdP or the network
            raise _Rejected(f"cannot read the keys of issuer {name}: {_describe(exc)}") from exc
        self._keys = keys
        self._fetched_at = self._clock()

    async def _read_keys(self) -> tuple[_Key, ...]:
        config = self.config
        discovery_url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        discovery = await self._fetch(discovery_url, config.ca_file)
        if not isinstance(discovery, dict) or discovery.get("issuer") != config.issuer:
            named = discovery.get("issuer") if isinstance(discovery, dict) else None
            raise _Rejected(
                f"discovery document of issuer {config.name} names issuer {_shown(named)},"
                f" not {config.issuer!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not url_allowed(jwks_uri):
            raise _Rejected(f"discovery document of issuer {config.name} has no usable jwks_uri")
        jwks = await self._fetch(jwks_uri, config.ca_file)
        entries = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(entries, list):
            raise _Rejected(f"the JWKS of issuer {config.name} has no key list")
        return tuple(key for key in map(_parse_jwk, entries[:MAX_KEYS]) if key is not None)


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS; not yet verified."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise _Rejected("not a token (empty, too long or not text)")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise _Rejected("not a compact JWS (three base64url segments)")
    header = _json_object(_b64(parts[0]))
    claims = _json_object(_b64(parts[1]))
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), _b64(parts[2])


def _b64(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _Rejected("bad base64url") from exc


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _Rejected("header or claims are not JSON") from exc
    if not isinstance(value, dict):
        raise _Rejected("header or claims are not a JSON object")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; a token relying on that is refused.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _parse_jwk(entry: object) -> _Key | None:
    """A published signing key, public parts only; None for anything we cannot use."""
    if not isinstance(entry, dict):
        return None
    kid, alg = entry.get("kid"), entry.get("alg")
    ops = entry.get("key_ops")
    if entry.get("use", "sig") != "sig" or (ops is not None and "verify" not in ops):
        return None
    if not isinstance(kid, str | None) or not isinstance(alg, str | None):
        return None
    try:
        key: PublicKey
        if entry.get("kty") == "RSA":
            numbers = rsa.RSAPublicNumbers(_b64int(entry["e"]), _b64int(entry["n"]))
            key = numbers.public_key()
            if key.key_size < MIN_RSA_BITS:
                return None
        elif entry.get("kty") == "EC":
            curve = {crv: cls for crv, cls in _CURVES.values()}[entry["crv"]]
            point = ec.EllipticCurvePublicNumbers(_b64int(entry["x"]), _b64int(entry["y"]), curve())
            key = point.public_key()
        else:
            return None
    except (KeyError, TypeError, ValueError, _Rejected):
        return None
    return _Key(kid, alg, key)


def _b64int(value: object) -> int:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ValueError("not base64url")
    return int.from_bytes(_b64(value), "big")


def _fits(key: _Key, alg: str) -> bool:
    """Whether ``key`` may verify ``alg``: RSA for RS*/PS*, EC on the alg's curve."""
    if key.alg is not None and key.alg != alg:
        return False
    if alg[:2] in ("RS", "PS"):
        return isinstance(key.key, rsa.RSAPublicKey)
    curve = _CURVES.get(alg)
    return (
        curve is not None
        and isinstance(key.key, ec.EllipticCurvePublicKey)
        and isinstance(key.key.curve, curve[1])
    )


def _signature_valid(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    digest = _HASHES[alg[2:]]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg.startswith("RS")
                else padding.PSS(padding.MGF1(digest), salt_length=digest.digest_size)
            )
            key.verify(signature, signing_input, pad, digest)
            return True
        # JWS carries ECDSA signatures as fixed-width r || s, not DER.
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            return False
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
        return True
    except (InvalidSignature, ValueError):
        return False


def _number(claims: Mapping[str, Any], name: str, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Rejected(f"{name} is {'missing or ' if required else ''}not a number")
    return float(value)


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    exp = _number(claims, "exp", required=True)
    nbf = _number(claims, "nbf")
    iat = _number(claims, "iat")
    if exp is not None and now - LEEWAY_SECONDS >= exp:
        raise _Rejected("expired")
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise _Rejected("not yet valid (nbf)")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise _Rejected("issued in the future (iat)")


def _check_audience(claims: Mapping[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    if aud == audience or (isinstance(aud, list) and audience in aud):
        return
    raise _Rejected(f"audience {_shown(aud)} does not include {audience!r}")


def _identity(config: OidcIssuerConfig, claims: Mapping[str, Any], token: str) -> Identity:
    subject = claims.get(config.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise _Rejected(f"subject claim {config.subject_claim!r} is missing or not text")
    groups = _groups(claims.get(config.groups_claim), config.groups_claim)
    scope = [*config.scope]
    for group in groups:
        scope.extend(config.group_scopes.get(group, ()))
    # The issuer's name is part of the id: two issuers may use the same jti.
    jti = claims.get("jti")
    if not (isinstance(jti, str) and _JTI.fullmatch(jti)):
        jti = hashlib.sha256(token.encode("ascii")).hexdigest()[:16]
    token_id = f"{TOKEN_ID_PREFIX}{config.name}:{jti}"
    exp = _number(claims, "exp", required=True)
    return Identity(
        subject=subject,
        groups=groups,
        token_id=token_id,
        scope=tuple(dict.fromkeys(scope)),
        expires_at=exp,
        issuer=config.name,
        issued_at=_number(claims, "iat") or 0.0,
    )


def _groups(value: object, claim: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list) and all(isinstance(g, str) for g in value):
        items = value
    else:
        raise _Rejected(f"groups claim {claim!r} is not a list of strings")
    return tuple(dict.fromkeys(g for g in items if g))


def _shown(value: object) -> str:
    """An attacker-supplied value, made safe and short for a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
