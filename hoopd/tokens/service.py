"""The token service: RFC 8693 token exchange over the key ring, the store and the
rules of :mod:`hoopd.tokens.exchange`, and revocation that tells every gateway.

The exchange request (RFC 8693 section 2.1, form parameters):

* ``grant_type`` = ``urn:ietf:params:oauth:grant-type:token-exchange`` (required);
* ``subject_token`` and ``subject_token_type`` (required; the type is
  ``urn:ietf:params:oauth:token-type:access_token`` or ``...:jwt``);
* ``actor_token`` and ``actor_token_type`` (optional; the actor token must verify,
  and its subject becomes the new actor);
* ``scope`` (space-separated ``connection:action`` items; default: the subject
  token's), ``requested_token_type`` (one of the two types above);
  ``audience``/``resource`` are accepted only when they name this issuer;
* extensions: ``ttl`` (seconds; default ``[identity] default_ttl_seconds``, capped at
  ``max_ttl_seconds`` and at the subject token's expiry) and ``actor`` (a name).

Success is 200 with ``access_token``, ``issued_token_type``, ``token_type: Bearer``,
``expires_in`` and ``scope`` (RFC 8693 section 2.2.1). Errors are 400 with ``error`` and
``error_description`` (RFC 6749 section 5.2): ``unsupported_grant_type`` for another
grant; ``invalid_scope`` for a scope that does not parse or would widen;
``invalid_target`` for an audience or resource other than this issuer; and
``invalid_request`` for everything else, including a subject or actor token that does
not verify, has expired or is revoked: RFC 8693 section 2.2.2 names ``invalid_request``
for a subject or actor token that is "invalid for any reason" (``invalid_grant`` is
RFC 6749's code for authorization grants such as codes and refresh tokens). A store
that cannot be written answers 503 with ``temporarily_unavailable``, and no token.

Every mint and every refusal is written to the store's events (token ids, never
tokens) before the answer is returned; a token is only returned once it is recorded.
"""

from __future__ import annotations

import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from jose import jwt

from hoopd import revocation_bus
from hoopd.config_identity import IdentityConfig
from hoopd.identity.base import Identity, TokenVerifier
from hoopd.tokens.claims import TOKEN_ID_PREFIX, claims_for
from hoopd.tokens.exchange import ExchangeRefusal, ExchangeRequest, MintPlan, exchange
from hoopd.tokens.keys import ALGORITHM, KeyRing, KeyStoreError
from hoopd.tokens.store import Revocation, TokenStore

log = logging.getLogger("hoopd.tokens")

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPES: Final = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)
_MAX_TTL_DIGITS: Final = 9

Answer = tuple[int, dict[str, Any]]


class _Refused(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class TokenService:
    """Mints gateway tokens by exchange and writes revocations.

    ``verifier_for_subject_tokens`` checks subject and actor tokens (typically every
    verifier the gateway accepts: gateway, static, OIDC); whatever it accepts is also
    checked against the store's revocations here.
    """

    def __init__(
        self,
        keys: KeyRing,
        config: IdentityConfig,
        store: TokenStore,
        verifier_for_subject_tokens: TokenVerifier,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.config = config
        self.store = store
        self._verifier = verifier_for_subject_tokens
        self._clock = clock

    async def exchange(self, form: Mapping[str, str]) -> Answer:
        """Answer one token exchange request; see the module docstring. Never raises
        for anything a client sends."""
        asked = _asked(form)
        parent: Identity | None = None
        try:
            self._check_grant(form)
            parent = await self._verified(form, "subject")
            if parent is None:
                raise _Refused("invalid_request", "subject_token is missing")
            request, actor_token_id = await self._request(form)
            if actor_token_id is not None:
                asked["actor_token_id"] = actor_token_id
            now = self._clock()
            plan = exchange(parent, request, self.config, now)
            if isinstance(plan, ExchangeRefusal):
                raise _Refused(plan.error, plan.description)
            token, child = self._mint(plan, now, asked)
        except _Refused as refused:
            return self._refuse(parent, asked, refused)
        except (sqlite3.Error, KeyStoreError) as exc:
            log.error("token exchange failed: the token store or keys are unusable: %s", exc)
            return 503, _error(
                "temporarily_unavailable", "the token store is unavailable; try again"
            )
        issued_type = form.get("requested_token_type") or ACCESS_TOKEN_TYPE
        assert child.expires_at is not None
        return 200, {
            "access_token": token,
            "issued_token_type": issued_type,
            "token_type": "Bearer",
            "expires_in": max(0, math.floor(child.expires_at) - math.floor(now)),
            "scope": " ".join(child.scope or ()),
        }

    def revoke_token(self, token_id: str, by: str, reason: str) -> Revocation:
        """Revoke ``token_id`` and its subtree, then tell every gateway."""
        return self._announced(self.store.revoke_token(token_id, by, reason))

    def revoke_subject(self, subject: str, by: str, reason: str) -> Revocation:
        """Revoke every token of ``subject`` issued so far, then tell every gateway."""
        return self._announced(self.store.revoke_subject(subject, by, reason))

    def revoke_actor(self, actor: str, by: str, reason: str) -> Revocation:
        """Revoke every token naming ``actor`` issued so far, then tell every gateway."""
        return self._announced(self.store.revoke_actor(actor, by, reason))

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify gateway tokens (``/.well-known/jwks.json``)."""
        return self.keys.jwks()

    def _announced(self, revocation: Revocation) -> Revocation:
        revocation_bus.announce(self.store.directory)
        return revocation

    def _check_grant(self, form: Mapping[str, str]) -> None:
        grant = form.get("grant_type")
        if not grant:
            raise _Refused("invalid_request", "grant_type is missing")
        if grant != GRANT_TYPE:
            raise _Refused("unsupported_grant_type", f"only {GRANT_TYPE} is supported")
        for name in ("audience", "resource"):
            if name in form and form[name] != self.config.issuer:
                raise _Refused("invalid_target", f"{name} must be {self.config.issuer!r}")
        requested_type = form.get("requested_token_type")
        if requested_type is not None and requested_type not in TOKEN_TYPES:
            raise _Refused("invalid_request", _types_note("requested_token_type"))

    async def _request(self, form: Mapping[str, str]) -> tuple[ExchangeRequest, str | None]:
        """What is asked for, and the id of the actor token if one was given."""
        actor = form.get("actor")
        actor_identity = await self._verified(form, "actor")
        if actor_identity is None:
            return ExchangeRequest(form.get("scope"), _ttl(form.get("ttl")), actor), None
        if actor is not None and actor != actor_identity.subject:
            raise _Refused("invalid_request", "actor differs from the actor token's subject")
        request = ExchangeRequest(form.get("scope"), _ttl(form.get("ttl")), actor_identity.subject)
        return request, actor_identity.token_id

    async def _verified(self, form: Mapping[str, str], role: str) -> Identity | None:
        """The identity of ``<role>_token``, None if it is absent; refuses a token that
        does not verify or is revoked."""
        token = form.get(f"{role}_token")
        token_type = form.get(f"{role}_token_type")
        if token is None:
            if token_type is not None:
                raise _Refused("invalid_request", f"{role}_token_type without {role}_token")
            return None
        if token_type is None:
            raise _Refused("invalid_request", f"{role}_token_type is missing")
        if token_type not in TOKEN_TYPES:
            raise _Refused("invalid_request", _types_note(f"{role}_token_type"))
        identity = await self.bearer_identity(token)
        if identity is None:
            raise _Refused(
                "invalid_request", f"the {role} token is not valid (unknown, expired or revoked)"
            )
        return identity

    async def bearer_identity(self, token: str) -> Identity | None:
        """The identity of a token offered in exchange for a credential (a token, an
        SSH certificate): any kind the subject-token verifier accepts, expired or
        revoked ones excepted; None otherwise. Raises ``sqlite3.Error``."""
        identity = await self._verifier.verify(token)
        if identity is None or self.store.revocation_for(identity) is not None:
            return None
        return identity

    def _mint(self, plan: MintPlan, now: float, asked: dict[str, Any]) -> tuple[str, Identity]:
        child = plan.identity(TOKEN_ID_PREFIX + secrets.token_urlsafe(18))
        key = self.keys.signing_key()
        claims = claims_for(child, self.config.issuer)
        token = jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})
        detail = {"parent": plan.parent_token_id, "kid": key.kid, "asked": asked}
        # Recorded before it is handed out: an unrecorded token would be missing from
        # the subtree a revoker is shown.
        self.store.record_minted(child, plan.parent_token_id, detail)
        log.info(
            "minted %s from %s for %s (actor %s), scope %s, expires in %ds",
            child.token_id,
            plan.parent_token_id,
            child.subject,
            child.actor,
            " ".join(child.scope or ()),
            math.floor((child.expires_at or now) - now),
        )
        return token, child

    def _refuse(self, parent: Identity | None, asked: dict[str, Any], refused: _Refused) -> Answer:
        detail = {"error": refused.error, "reason": refused.description, "asked": asked}
        self.record_refusal("token exchange", parent, detail)
        return 400, _error(refused.error, refused.description)

    def record_refusal(self, what: str, parent: Identity | None, detail: dict[str, Any]) -> None:
        """Write a refused request (``detail`` holds its ``reason``) to the store's token
        events and the log. A store that cannot be written is logged, not raised: the
        refusal stands either way."""
        try:
            self.store.record_refused(
                parent.token_id if parent else None,
                parent.subject if parent else None,
                parent.actor if parent else None,
                detail,
            )
        except sqlite3.Error as exc:
            log.error("could not record a refused %s: %s", what, exc)
        log.info(
            "%s refused for %s: %s",
            what,
            parent.token_id if parent else "an unverified token",
            detail.get("reason"),
        )


def _asked(form: Mapping[str, str]) -> dict[str, Any]:
    """What was asked, for the audit event: every parameter but the tokens."""
    return {
        name: form[name]
        for name in ("scope", "ttl", "actor", "subject_token_type", "actor_token_type")
        if name in form
    }


def _ttl(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TTL_DIGITS:
        raise _Refused("invalid_request", "ttl must be a whole number of seconds")
    return int(text)


def _types_note(parameter: str) -> str:
    return f"{parameter} must be {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}"


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}
