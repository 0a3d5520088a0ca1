"""Who is calling: the identity a gateway token stands for, and the one interface
every way of checking a token implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller.

    ``subject`` names the identity at the root of the delegation chain (the person or
    machine the first token was issued to; a delegated token keeps it). ``groups``
    are that identity's groups. ``token_id`` identifies the token used (never the
    token itself: safe to log).

    ``actor_chain`` lists the actors a delegated token was exchanged for, in hop
    order: the first delegate first, the actor now calling last (empty for a token
    issued directly). ``lineage`` lists the ids of the tokens this one was derived
    from, root first, not including ``token_id``: revoking any of them revokes this
    one. ``scope`` lists what the token may be used for (``connection:action``
    items, see :mod:`hoopd.identity.scope`); ``None`` means unrestricted (only
    static bootstrap tokens without a configured scope). ``expires_at`` is the
    token's expiry (Unix seconds), ``None`` if it has none. ``issuer`` says who
    issued the token: ``"static"``, ``"hoopd"`` or an OIDC issuer's configured name.
    ``issued_at`` is when the token was issued (Unix seconds; 0 when unknown, as
    for static tokens): revoking a subject or actor revokes the tokens issued
    before the revocation.
    """

    subject: str
    groups: tuple[str, ...]
    token_id: str
    actor_chain: tuple[str, ...] = ()
    scope: tuple[str, ...] | None = None
    expires_at: float | None = None
    issuer: str = "static"
    lineage: tuple[str, ...] = ()
    issued_at: float = 0.0

    @property
    def depth(self) -> int:
        """How many exchanges separate this token from a root token (0 for a root)."""
        return len(self.actor_chain)

    @property
    def actor(self) -> str:
        """Who is acting now: the last actor of the chain, or the subject itself."""
        return self.actor_chain[-1] if self.actor_chain else self.subject

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "subject": self.subject,
            "groups": list(self.groups),
            "token_id": self.token_id,
            "actor_chain": list(self.actor_chain),
            "issuer": self.issuer,
        }
        if self.scope is not None:
            record["scope"] = list(self.scope)
        if self.lineage:
            record["lineage"] = list(self.lineage)
        if self.expires_at is not None:
            record["expires_at"] = self.expires_at
        return record


class TokenVerifier(Protocol):
    """Checks a gateway token presented by a client.

    Implementations must take time independent of how much of the token matched,
    return ``None`` for any token they do not accept (unknown, expired, revoked,
    badly signed), and never raise for bad input.
    """

    async def verify(self, token: str) -> Identity | None: ...
