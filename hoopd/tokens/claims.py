"""The claims of a gateway token, and their mapping to and from an :class:`Identity`.

A gateway token is a JWS (compact JWT) signed with ES256; its header carries
``alg: ES256``, ``typ: JWT`` and the ``kid`` of the signing key. Its claims:

===================  ==========================================================
``iss``, ``aud``     ``[identity] issuer`` (both: hoopd is the only audience)
``sub``              the subject at the root of the delegation chain
``groups``           the subject's groups (array of strings)
``scope``            space-separated ``connection:action`` items, OAuth style;
                     always present and never empty (a minted token is never
                     unrestricted)
``iat``              when it was minted (Unix seconds, with milliseconds)
``nbf``              ``iat`` rounded down to whole seconds
``exp``              when it expires (Unix seconds, integer)
``jti``              random; the identity's ``token_id`` is ``"gt:" + jti``
``act``              RFC 8693 section 4.1: the outermost ``act`` names the actor
                     calling now (``{"sub": ...}``), each nested ``act`` the actor
                     before it; absent for a token with no actor
``hoopd_lineage``    the ids of the tokens this one was exchanged from, root first
                     (they may be static ``st:`` or OIDC ``oidc:`` ids); absent
                     when empty
===================  ==========================================================

Guarantees: :func:`identity_from_claims` accepts only claims in exactly this shape
(types, the ``act`` nesting, a scope that parses) and raises :class:`ClaimsError`
otherwise; ``claims_for(identity_from_claims(c), issuer)`` gives back ``c``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from hoopd.identity.base import Identity
from hoopd.identity.scope import ScopeError, format_scope, parse_scope, split_scope

TOKEN_ID_PREFIX: Final = "gt:"
ISSUER_NAME: Final = "hoopd"
"""``Identity.issuer`` of every gateway token (the configured ``iss`` may differ)."""
LINEAGE_CLAIM: Final = "hoopd_lineage"
ACTOR_NAME: Final = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")
"""What an actor name may be: letters, digits, ``_.@:-``, at most 128 characters."""
_JTI: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
# Generous bounds: a token is pasted into password fields, so it has to stay small.
_MAX_NAME_CHARS: Final = 256
_MAX_GROUPS: Final = 64
_MAX_DEPTH: Final = 16  # [identity] max_chain_depth is at most 16
MAX_LINEAGE: Final = 32
"""The most ancestors a token may have: exchanges without a new actor add no depth,
but each adds to the lineage, so this bounds the token's size."""


class ClaimsError(ValueError):
    """Claims that are not a gateway token's; the message says which claim (no values)."""


def claims_for(identity: Identity, issuer: str) -> dict[str, Any]:
    """The JWT claims of ``identity`` as a token issued by ``issuer``.

    Raises :class:`ClaimsError` if the identity cannot be a gateway token: no
    ``gt:`` token id, no scope, or no expiry.
    """
    if not identity.token_id.startswith(TOKEN_ID_PREFIX):
        raise ClaimsError("a gateway token's id starts with 'gt:'")
    if not identity.scope:
        raise ClaimsError("a gateway token needs a non-empty scope")
    if identity.expires_at is None:
        raise ClaimsError("a gateway token needs an expiry")
    try:
        scope = format_scope(parse_scope(identity.scope))
    except ScopeError:
        raise ClaimsError("the scope does not follow the scope grammar") from None
    # iat keeps milliseconds (RFC 7519 NumericDate may be fractional): a subject or
    # actor revocation covers the tokens issued before it, and a token minted in the
    # same second after it must not count as one of them.
    issued = round(identity.issued_at, 3)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": issuer,
        "sub": identity.subject,
        "groups": list(identity.groups),
        "scope": scope,
        "iat": issued,
        "nbf": math.floor(issued),
        "exp": math.floor(identity.expires_at),
        "jti": identity.token_id.removeprefix(TOKEN_ID_PREFIX),
    }
    act: dict[str, Any] | None = None
    for actor in identity.actor_chain:  # first delegate first: it ends up innermost
        act = {"sub": actor} if act is None else {"sub": actor, "act": act}
    if act is not None:
        claims["act"] = act
    if identity.lineage:
        claims[LINEAGE_CLAIM] = list(identity.lineage)
    return claims


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    """The identity a verified token's claims stand for (``iss``/``aud``/times are
    checked by the verifier, not here). Raises :class:`ClaimsError`."""
    subject = _name(claims.get("sub"), "sub")
    groups = _names(claims.get("groups", []), "groups", _MAX_GROUPS)
    scope_text = claims.get("scope")
    if not isinstance(scope_text, str):
        raise ClaimsError("scope must be a string")
    try:
        scope = tuple(str(item) for item in split_scope(scope_text))
    except ScopeError:
        raise ClaimsError("scope does not follow the scope grammar") from None
    if not scope:
        raise ClaimsError("scope must not be empty")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not _JTI.fullmatch(jti):
        raise ClaimsError("jti is missing or malformed")
    lineage = _names(claims.get(LINEAGE_CLAIM, []), LINEAGE_CLAIM, MAX_LINEAGE)
    return Identity(
        subject=subject,
        groups=groups,
        token_id=TOKEN_ID_PREFIX + jti,
        actor_chain=actor_chain(claims.get("act")),
        scope=scope,
        expires_at=float(_time(claims.get("exp"), "exp")),
        issuer=ISSUER_NAME,
        lineage=lineage,
        issued_at=float(_time(claims.get("iat"), "iat", fractional=True)),
    )


def actor_chain(act: Any) -> tuple[str, ...]:
    """The hop-ordered actor chain (first delegate first) of an RFC 8693 ``act``
    claim (outermost = current actor); ``()`` for a missing claim."""
    chain: list[str] = []
    while act is not None:
        if not isinstance(act, dict) or set(act) - {"sub", "act"}:
            raise ClaimsError("act must be an object with sub and an optional nested act")
        if len(chain) >= _MAX_DEPTH:
            raise ClaimsError("act is nested too deeply")
        name = act.get("sub")
        if not isinstance(name, str) or not ACTOR_NAME.fullmatch(name):
            raise ClaimsError("act.sub must be an actor name")
        chain.append(name)
        act = act.get("act")
    return tuple(reversed(chain))


def _time(value: Any, claim: str, *, fractional: bool = False) -> int | float:
    # bool is an int subclass; true is not a time.
    kinds = (int, float) if fractional else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise ClaimsError(f"{claim} must be {'a' if fractional else 'an integer'} time")
    return value


def _name(value: Any, claim: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME_CHARS:
        raise ClaimsError(f"{claim} must be a non-empty string")
    return value


def _names(value: Any, claim: str, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise ClaimsError(f"{claim} must be a list of at most {limit} strings")
    return tuple(_name(item, claim) for item in value)
