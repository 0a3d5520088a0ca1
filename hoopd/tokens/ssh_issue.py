"""Issuing SSH user certificates for a token: the exchange of a bearer token and an
OpenSSH public key for a short-lived certificate signed by hoopd's CA
(:mod:`hoopd.tokens.ssh_ca`).

The request's parameters: ``public_key`` (an OpenSSH public key line, required),
and optionally ``scope`` (narrower than the token's), ``ttl`` (seconds) and
``actor`` (a new hop in the chain, for a sub-agent), as for a token exchange.

Guarantees of :meth:`SshCertificateIssuer.issue`:

* the certificate's identity is exactly what a token exchange would mint from the
  bearer token for the same request (:func:`hoopd.tokens.exchange.exchange`: the
  scope only narrows, the chain grows by the actor if any, the lineage by the
  bearer token's id), valid at most ``[identity] ssh_certificate_max_ttl_seconds``
  and never past the bearer token's expiry;
* a bearer token that is not valid (unknown, expired, revoked) gets 401
  ``invalid_token``; a request the rules refuse gets 400 with an RFC 6749 error;
  a store or CA that cannot be used gets 503 ``temporarily_unavailable``;
* every certificate issued is recorded in the token store (as a ``minted`` token
  whose event names the certified key's fingerprint) before it is returned, and
  every refusal as a ``refused`` event; so revoking the bearer token, or the
  certificate's own id, revokes the certificate as it would a token;
* never raises for anything a client sends.
"""

from __future__ import annotations

import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import SshWireError, fingerprint, key_algorithm, public_key_blob
from hoopd.tokens.claims import TOKEN_ID_PREFIX
from hoopd.tokens.exchange import ExchangeRefusal, ExchangeRequest, exchange
from hoopd.tokens.keys import KeyStoreError
from hoopd.tokens.service import TokenService
from hoopd.tokens.ssh_ca import SshCertificateAuthority
from hoopd.tokens.ssh_cert import CertificateError

log = logging.getLogger("hoopd.tokens")

Answer = tuple[int, dict[str, Any]]
_MAX_TTL_DIGITS: Final = 9


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class SshCertificateIssuer:
    """Issues certificates with ``ca`` under the rules and store of ``service``."""

    def __init__(
        self,
        service: TokenService,
        ca: SshCertificateAuthority,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.ca = ca
        self._clock = clock

    async def issue(self, token: str | None, form: Mapping[str, str]) -> Answer:
        """Answer one request: ``token`` is the bearer token (None: none was sent)."""
        asked = {name: form[name] for name in ("scope", "ttl", "actor") if name in form}
        parent: Identity | None = None
        try:
            parent = await self._bearer(token)
            key = _public_key(form.get("public_key"))
            asked["key"] = fingerprint(key)
            certificate, child = self._issue(parent, key, form, asked)
        except _Refused as refused:
            return self._refuse(parent, asked, refused)
        except (sqlite3.Error, KeyStoreError) as exc:
            log.error("SSH certificate not issued: the token store or CA is unusable: %s", exc)
            return 503, _error(
                "temporarily_unavailable", "the token store is unavailable; try again"
            )
        assert child.expires_at is not None
        return 200, {
            "certificate": certificate,
            "token_id": child.token_id,
            "expires_at": math.floor(child.expires_at),
            "expires_in": max(0, math.floor(child.expires_at) - math.floor(child.issued_at)),
            "scope": " ".join(child.scope or ()),
        }

    async def _bearer(self, token: str | None) -> Identity:
        identity = None if not token else await self.service.bearer_identity(token)
        if identity is None:
            raise _Refused(
                401, "invalid_token", "the bearer token is not valid (unknown, expired or revoked)"
            )
        return identity

    def _issue(
        self, parent: Identity, key: bytes, form: Mapping[str, str], asked: dict[str, Any]
    ) -> tuple[str, Identity]:
        config = self.service.config
        limit = config.ssh_certificate_max_ttl_seconds
        ttl = _ttl(form.get("ttl"))
        request = ExchangeRequest(
            form.get("scope"), limit if ttl is None else min(ttl, limit), form.get("actor")
        )
        plan = exchange(parent, request, config, self._clock())
        if isinstance(plan, ExchangeRefusal):
            raise _Refused(400, plan.error, plan.description)
        child = plan.identity(TOKEN_ID_PREFIX + secrets.token_urlsafe(18))
        try:
            certificate = self.ca.certify(key, child)
        except CertificateError as exc:
            raise _Refused(400, "invalid_request", str(exc)) from None
        detail = {
            "parent": parent.token_id,
            "ssh_certificate": {"key": fingerprint(key), "type": key_algorithm(key)},
            "asked": asked,
        }
        # Recorded before it is handed out, as a minted token: its id is in the
        # subtree a revoker is shown, and the event names the key it certifies.
        self.service.store.record_minted(child, parent.token_id, detail)
        log.info(
            "issued SSH certificate %s for key %s from %s (%s, actor %s), scope %s",
            child.token_id,
            fingerprint(key),
            parent.token_id,
            child.subject,
            child.actor,
            " ".join(child.scope or ()),
        )
        return certificate, child

    def _refuse(self, parent: Identity | None, asked: dict[str, Any], refused: _Refused) -> Answer:
        detail = {
            "error": refused.error,
            "reason": refused.description,
            "asked": asked,
            "ssh_certificate": True,
        }
        self.service.record_refusal("SSH certificate request", parent, detail)
        return refused.status, _error(refused.error, refused.description)


def issuer_for(service: TokenService) -> SshCertificateIssuer:
    """The issuer over ``service``'s store, with the CA kept beside its keys."""
    return SshCertificateIssuer(
        service, SshCertificateAuthority(service.store.directory, service.config.issuer)
    )


def _public_key(line: str | None) -> bytes:
    if not line:
        raise _Refused(400, "invalid_request", "public_key is missing")
    try:
        return public_key_blob(line)
    except SshWireError as exc:
        raise _Refused(400, "invalid_request", f"public_key: {exc}") from None


def _ttl(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TTL_DIGITS:
        raise _Refused(400, "invalid_request", "ttl must be a whole number of seconds")
    return int(text)


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}
