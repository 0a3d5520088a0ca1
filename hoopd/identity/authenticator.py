"""Every way a caller may prove who it is, behind one call.

A presented token is routed by its shape, never by trial. Anything that is not a
JWT naming an issuer is looked up among the static bootstrap tokens. A JWT whose
(unverified) ``iss`` is the gateway's own issuer is a gateway token. A JWT from a
configured OIDC issuer is an OIDC access token: accepted on a connection only where
that issuer's ``accept_on`` lists it, and always as the subject token of an
exchange. The verifier chosen then checks it fully. Whatever accepted the token,
the token store is asked whether it, a token it derives from, its subject or an
actor in its chain has been revoked.

SSH clients may log in with a public key instead (:meth:`Authenticator.login_with_public_key`),
routed by shape too: an OpenSSH certificate goes to hoopd's SSH CA, which returns the
identity it certifies; a plain key to the configured key bindings. The identity
then passes the very checks a token's does: expiry, revocation, scope.

Guarantees: :meth:`Authenticator.authenticate`, :meth:`Authenticator.login` and
:meth:`Authenticator.login_with_public_key` never raise for any input and return
``None`` for every credential that is not acceptable *here*; they do not reveal
which check failed (callers answer every refusal alike, after a fixed delay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from jose import jwt
from jose.exceptions import JWTError

from hoopd.identity.base import Identity, TokenVerifier
from hoopd.identity.scope import identity_level
from hoopd.identity.ssh_wire import key_algorithm
from hoopd.identity.tokens import MAX_TOKEN_CHARS
from hoopd.live_sessions import RevocationSource

log = logging.getLogger("hoopd.identity")

CERTIFICATE_SUFFIX: Final = "-cert-v01@openssh.com"
"""How the algorithm name of every OpenSSH certificate ends."""


class PublicKeyVerifier(Protocol):
    """The identity an SSH public key or certificate blob stands for, or None; never
    raises. (The SSH layer proves the client holds the private key.)"""

    def lookup(self, blob: bytes) -> Identity | None: ...


@dataclass(frozen=True, slots=True)
class Login:
    """A token accepted on a connection: who, and the action its scope grants there
    (see :mod:`hoopd.identity.scope`)."""

    identity: Identity
    granted_level: int


class Authenticator:
    """Routes each token to the verifier for its kind; see the module docstring.

    ``oidc_issuers`` maps each configured OIDC issuer URL to its configured name;
    ``oidc_on`` maps a connection name to the issuer names whose access tokens
    clients may present on it directly.
    """

    def __init__(
        self,
        static: TokenVerifier,
        *,
        gateway_issuer: str,
        gateway_tokens: TokenVerifier | None = None,
        oidc: TokenVerifier | None = None,
        oidc_issuers: Mapping[str, str] | None = None,
        oidc_on: Mapping[str, frozenset[str]] | None = None,
        revocations: RevocationSource | None = None,
        ssh_keys: PublicKeyVerifier | None = None,
        ssh_certificates: PublicKeyVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._static = static
        self._ssh_keys = ssh_keys
        self._ssh_certificates = ssh_certificates
        self._clock = clock
        self._gateway_issuer = gateway_issuer
        self._gateway_tokens = gateway_tokens
        self._oidc = oidc
        self._oidc_issuers = dict(oidc_issuers or {})
        self._oidc_on = dict(oidc_on or {})
        self.revocations = revocations

    async def authenticate(self, token: str, connection: str | None) -> Identity | None:
        """The identity ``token`` proves for use on ``connection`` (None: the admin
        API, where OIDC access tokens are not accepted), or None."""
        try:
            return await self._authenticate(token, connection, subject_token=False)
        except Exception:  # a verifier bug must refuse the token, not end the gateway
            log.exception("token check failed unexpectedly; the token is refused")
            return None

    async def login(self, token: str, connection: str) -> Login | None:
        """The identity ``token`` proves and the widest action its scope grants on
        ``connection``; None if the token is not accepted there or its scope does
        not reach ``connection`` (the engines refuse both alike)."""
        identity = await self.authenticate(token, connection)
        return None if identity is None else self._reaching(identity, connection)

    async def login_with_public_key(self, blob: bytes, connection: str) -> Login | None:
        """:meth:`login` for an SSH public key or certificate (its wire blob): the
        identity it is bound to or certifies, if that is current, not revoked, and
        its scope reaches ``connection``; else None."""
        try:
            identity = self._key_identity(blob)
            if identity is None or self._revoked(identity):
                return None
            return self._reaching(identity, connection)
        except Exception:  # a verifier bug must refuse the key, not end the gateway
            log.exception("SSH key check failed unexpectedly; the key is refused")
            return None

    def _key_identity(self, blob: bytes) -> Identity | None:
        algorithm = key_algorithm(blob) if isinstance(blob, bytes) else None
        if algorithm is None:
            return None
        certificate = algorithm.endswith(CERTIFICATE_SUFFIX)
        verifier = self._ssh_certificates if certificate else self._ssh_keys
        identity = None if verifier is None else verifier.lookup(blob)
        # Each verifier refuses what has expired; checked here as well, so that no
        # kind of key can let an expired identity in.
        expires_at = None if identity is None else identity.expires_at
        if expires_at is not None and self._clock() >= expires_at:
            return None
        return identity

    def _reaching(self, identity: Identity, connection: str) -> Login | None:
        level = identity_level(identity.scope, connection)
        if level is None:
            log.info("token %s: its scope does not reach %s", identity.token_id, connection)
            return None
        return Login(identity, level)

    async def verify(self, token: str) -> Identity | None:
        """:class:`TokenVerifier` for the admin API: static and gateway tokens."""
        return await self.authenticate(token, None)

    async def subject_token(self, token: str) -> Identity | None:
        """The identity of a token offered for exchange: any kind, OIDC included."""
        try:
            return await self._authenticate(token, None, subject_token=True)
        except Exception:
            log.exception("subject token check failed unexpectedly; the token is refused")
            return None

    async def _authenticate(
        self, token: str, connection: str | None, *, subject_token: bool
    ) -> Identity | None:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS * 16:
            return None
        identity: Identity | None = None
        issuer = _unverified_issuer(token)
        if issuer is None:
            identity = await self._static.verify(token)
        elif issuer == self._gateway_issuer and self._gateway_tokens is not None:
            identity = await self._gateway_tokens.verify(token)
        elif self._oidc is not None and issuer in self._oidc_issuers:
            allowed = self._oidc_on.get(connection or "", frozenset())
            if subject_token or self._oidc_issuers[issuer] in allowed:
                identity = await self._oidc.verify(token)
        if identity is None or self._revoked(identity):
            return None
        return identity

    def _revoked(self, identity: Identity) -> bool:
        """Whether the store revoked ``identity`` (itself, a token it derives from,
        its subject or an actor in its chain). Raises if the store cannot be read."""
        if self.revocations is None:
            return False
        reason = self.revocations.revocation_reason(identity)
        if reason is not None:
            log.info("token %s refused: %s", identity.token_id, reason)
            return True
        return False


def _unverified_issuer(token: str) -> str | None:
    """The ``iss`` claim of a compact JWS, read without checking anything (routing
    only: the verifier it selects checks the signature and every claim)."""
    try:
        issuer = jwt.get_unverified_claims(token).get("iss")
    except (JWTError, UnicodeError):
        return None
    return issuer if isinstance(issuer, str) else None
