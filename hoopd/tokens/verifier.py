"""Checking a gateway token: :class:`GatewayTokenVerifier`.

Guarantees: a token is accepted only if all of these hold, and ``verify``/``lookup``
return ``None`` otherwise, never raising:

* it is a compact JWS whose header says ``alg: ES256`` (nothing else: no ``none``,
  no HMAC with the public key as secret) and names a ``kid`` of the key ring;
* the ES256 signature verifies with that key;
* ``iss`` and ``aud`` are ``[identity] issuer`` (``aud`` a string or a list holding it);
* ``exp`` is in the future and ``nbf`` not, both with a 30-second leeway for clocks
  that disagree between gateways;
* the claims have the shape :mod:`hoopd.tokens.claims` documents;
* the store has no revocation for it, its ancestors, its subject or its actors.

A store that cannot be read makes the token refused (failing closed), with an error
in the log. Logs name token ids, never tokens.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final

from jose import jws
from jose.exceptions import JOSEError

from hoopd.config_identity import IdentityConfig
from hoopd.identity.base import Identity
from hoopd.tokens.claims import ClaimsError, identity_from_claims
from hoopd.tokens.keys import ALGORITHM, CLOCK_LEEWAY_SECONDS, KeyRing, KeyStoreError
from hoopd.tokens.store import TokenStore

log = logging.getLogger("hoopd.tokens")

# A gateway token is well under 2 KiB; refusing far longer input up front keeps a
# client from making us parse megabytes per attempt.
MAX_TOKEN_CHARS: Final = 8192


class GatewayTokenVerifier:
    """A :class:`~hoopd.identity.base.TokenVerifier` for tokens hoopd signed itself."""

    def __init__(
        self,
        keys: KeyRing,
        identity_config: IdentityConfig,
        store: TokenStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = identity_config.issuer
        self._store = store
        self._clock = clock

    async def verify(self, token: str) -> Identity | None:
        """:meth:`lookup`, as the ``TokenVerifier`` interface."""
        return self.lookup(token)

    def lookup(self, token: str) -> Identity | None:
        """The identity ``token`` stands for, or None if it is not accepted."""
        try:
            identity = self._unrevoked(token)
        except Exception:  # never raise for bad input; refuse instead
            log.exception("gateway token check failed unexpectedly; refused")
            return None
        return identity

    def _unrevoked(self, token: str) -> Identity | None:
        claims = self.verified_claims(token)
        if claims is None:
            return None
        try:
            identity = identity_from_claims(claims)
        except ClaimsError as exc:
            log.warning("gateway token refused: signed, but %s", exc)
            return None
        try:
            revoked = self._store.revocation_for(identity)
        except sqlite3.Error as exc:
            log.error("token store unreadable; token %s refused: %s", identity.token_id, exc)
            return None
        if revoked is not None:
            log.info("token %s refused: revoked (revocation %d)", identity.token_id, revoked.id)
            return None
        return identity

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a correctly signed, current token for this issuer, or None.
        Does not consult revocations."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            header = jws.get_unverified_header(token)
        except JOSEError:
            return None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            return None
        try:
            public = self._keys.public_pem(kid)
        except KeyStoreError as exc:
            log.error("signing keys unreadable; token refused: %s", exc)
            return None
        if public is None:
            return None
        try:
            payload = jws.verify(token, public, algorithms=[ALGORITHM])
            claims = json.loads(payload)
        except (JOSEError, ValueError):
            return None
        if not isinstance(claims, dict) or not self._current(claims):
            return None
        return claims

    def _current(self, claims: dict[str, Any]) -> bool:
        if claims.get("iss") != self._issuer:
            return False
        aud = claims.get("aud")
        if not (aud == self._issuer or (isinstance(aud, list) and self._issuer in aud)):
            return False
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not (_number(exp) and _number(nbf)):
            return False
        assert isinstance(exp, int | float) and isinstance(nbf, int | float)
        now = self._clock()
        # No leeway on exp: hoopd both mints and checks these tokens, on one clock, and
        # an expired token must be refused at login, not let in and then ended.
        return bool(now < exp and nbf - CLOCK_LEEWAY_SECONDS <= now)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
