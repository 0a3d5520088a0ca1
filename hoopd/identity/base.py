"""Who is calling: the identity a gateway token stands for, and the one interface
every way of checking a token implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller.

    ``subject`` names the caller; ``groups`` are the groups it belongs to;
    ``token_id`` identifies the token used (never the token itself: safe to log);
    ``actor_chain`` lists, outermost first, the actors a delegated token was
    exchanged through (empty for a token issued directly).
    """

    subject: str
    groups: tuple[str, ...]
    token_id: str
    actor_chain: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "groups": list(self.groups),
            "token_id": self.token_id,
            "actor_chain": list(self.actor_chain),
        }


class TokenVerifier(Protocol):
    """Checks a gateway token presented by a client.

    Implementations must take time independent of how much of the token matched,
    return ``None`` for any token they do not accept, and never raise for bad input.
    """

    def verify(self, token: str) -> Identity | None: ...
