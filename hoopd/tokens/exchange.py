"""The rules of RFC 8693 token exchange, apart from tokens and HTTP: what a child
token may be, given its parent identity and what was asked.

Guarantees of :func:`exchange` (pure: no I/O, no randomness, no clock of its own):

* the child's scope is covered by the parent's (:func:`~hoopd.identity.scope.uncovered`
  is empty), never empty, and always explicit, even from an unrestricted parent;
* the child expires no later than the parent, and at most ``max_ttl_seconds`` after
  ``now``;
* the child's depth (number of actors) is at most ``max_chain_depth``, and it has
  at most :data:`~hoopd.tokens.claims.MAX_LINEAGE` ancestors;
* the child keeps the parent's subject and groups; its actor chain is the parent's
  plus the new actor, if any; its lineage is the parent's plus the parent's token id.

Anything else is an :class:`ExchangeRefusal` with an RFC 6749 error code and a
description that names what was wrong (never a token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hoopd.config_identity import IdentityConfig
from hoopd.identity.base import Identity
from hoopd.identity.scope import ScopeError, format_scope, split_scope, uncovered
from hoopd.tokens.claims import ACTOR_NAME, ISSUER_NAME, MAX_LINEAGE

ErrorCode = Literal["invalid_request", "invalid_scope", "invalid_grant"]


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """What the caller asks for; ``None`` means "the default"."""

    scope: str | None = None
    ttl_seconds: int | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ExchangeRefusal:
    """Why no token is minted: an RFC 6749 section 5.2 ``error`` and its description."""

    error: ErrorCode
    description: str


@dataclass(frozen=True, slots=True)
class MintPlan:
    """The child token to mint; :meth:`identity` gives it its (random) token id."""

    parent_token_id: str
    subject: str
    groups: tuple[str, ...]
    scope: tuple[str, ...]
    actor_chain: tuple[str, ...]
    lineage: tuple[str, ...]
    issued_at: float
    expires_at: float

    def identity(self, token_id: str) -> Identity:
        return Identity(
            subject=self.subject,
            groups=self.groups,
            token_id=token_id,
            actor_chain=self.actor_chain,
            scope=self.scope,
            expires_at=self.expires_at,
            issuer=ISSUER_NAME,
            lineage=self.lineage,
            issued_at=self.issued_at,
        )


def exchange(
    parent: Identity, request: ExchangeRequest, config: IdentityConfig, now: float
) -> MintPlan | ExchangeRefusal:
    """The child token ``parent`` may have for ``request`` at ``now``, or why not."""
    if parent.expires_at is not None and now >= parent.expires_at:
        # invalid_request, as RFC 8693 section 2.2.2 says for an unacceptable subject_token.
        return ExchangeRefusal("invalid_request", "the subject token has expired")
    ttl = config.default_ttl_seconds if request.ttl_seconds is None else request.ttl_seconds
    if ttl < 1:
        return ExchangeRefusal("invalid_request", "ttl must be a positive number of seconds")
    ttl = min(ttl, config.max_ttl_seconds)

    actor_chain = parent.actor_chain
    if request.actor is not None:
        if not ACTOR_NAME.fullmatch(request.actor):
            return ExchangeRefusal(
                "invalid_request",
                "actor must be 1 to 128 letters, digits, '_', '.', '@', ':' or '-'",
            )
        actor_chain = (*actor_chain, request.actor)
    if len(actor_chain) > config.max_chain_depth:
        return ExchangeRefusal(
            "invalid_request",
            f"delegation chain too deep: the new token would be {len(actor_chain)} actors"
            f" deep; at most {config.max_chain_depth} are allowed",
        )

    if len(parent.lineage) + 1 > MAX_LINEAGE:
        return ExchangeRefusal(
            "invalid_request",
            f"delegation chain too deep: at most {MAX_LINEAGE} exchanges from a root token",
        )

    scope = _child_scope(parent, request.scope)
    if isinstance(scope, ExchangeRefusal):
        return scope
    expires_at = now + ttl
    if parent.expires_at is not None:
        expires_at = min(expires_at, parent.expires_at)
    return MintPlan(
        parent_token_id=parent.token_id,
        subject=parent.subject,
        groups=parent.groups,
        scope=scope,
        actor_chain=actor_chain,
        lineage=(*parent.lineage, parent.token_id),
        issued_at=now,
        expires_at=expires_at,
    )


def _child_scope(parent: Identity, requested: str | None) -> tuple[str, ...] | ExchangeRefusal:
    if requested is None:
        if parent.scope is None:
            # A minted token always says what it may do; an unrestricted parent has to
            # name it.
            return ExchangeRefusal(
                "invalid_scope",
                "the subject token is unrestricted: ask for a scope (connection:action items)",
            )
        requested = " ".join(parent.scope)
    try:
        wanted = split_scope(requested)
        have = None if parent.scope is None else split_scope(" ".join(parent.scope))
    except ScopeError as exc:
        return ExchangeRefusal("invalid_scope", str(exc))
    if not wanted:
        return ExchangeRefusal("invalid_scope", "the scope must name at least one item")
    wider = uncovered(have, wanted)
    if wider:
        return ExchangeRefusal(
            "invalid_scope",
            f"the scope may only narrow the subject token's; not covered by it:"
            f" {format_scope(wider)}",
        )
    return tuple(str(item) for item in wanted)
