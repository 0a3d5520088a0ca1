"""Static API tokens: the configuration holds only each token's SHA-256, and a client
presents the token itself.

Guarantees of :class:`StaticTokenVerifier`:

* a token is accepted only if its SHA-256 equals a configured one;
* the time taken depends on the number of configured tokens and on the length of
  the presented token, not on which token matched or how much of it did;
* ``verify`` never raises, whatever it is given, and the resulting ``token_id``
  is derived from the hash, so it cannot reveal the token;
* a token past its configured ``expires`` is refused like an unknown one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Final

from hoopd.config import TokenConfig
from hoopd.identity.base import Identity

TOKEN_PREFIX: Final = "hoopd_"
TOKEN_ID_PREFIX: Final = "st:"
# Issued tokens are 38 characters; anything far longer is not one of ours, and
# refusing it up front keeps a client from making us hash megabytes per attempt.
MAX_TOKEN_CHARS: Final = 1024


def token_sha256(token: str) -> str:
    """The lowercase hex SHA-256 of a token's UTF-8 bytes, as the config stores it."""
    return _digest(token).hex()


def _digest(token: str) -> bytes:
    # surrogatepass: a str decoded leniently from bytes may hold lone surrogates,
    # which strict UTF-8 encoding would turn into an exception.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 hex: ``("hoopd_" + 32 url-safe chars, hex)``.

    The token carries 192 bits from :mod:`secrets`; the prefix makes a leaked token
    easy to recognise (for example by secret scanners).
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)  # 24 bytes -> 32 characters
    return token, token_sha256(token)


class StaticTokenVerifier:
    """A :class:`~hoopd.identity.base.TokenVerifier` over the ``[[tokens]]`` of the config.

    Raises ``ValueError`` at construction if a hash is not 64 hex characters or appears
    twice (the configuration loader already refuses both).
    """

    def __init__(
        self, tokens: Sequence[TokenConfig], clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._entries: list[tuple[bytes, Identity]] = []
        for tok in tokens:
            digest = bytes.fromhex(tok.sha256)
            if len(digest) != 32:
                raise ValueError(f"token hash for {tok.identity!r} is not a SHA-256")
            if any(digest == known for known, _ in self._entries):
                raise ValueError(f"token hash for {tok.identity!r} is configured twice")
            identity = Identity(
                subject=tok.identity,
                groups=tuple(tok.groups),
                token_id=TOKEN_ID_PREFIX + tok.sha256.lower()[:12],
                scope=tok.scope,
                expires_at=None if math.isinf(tok.expires_at) else tok.expires_at,
                issuer="static",
            )
            self._entries.append((digest, identity))

    async def verify(self, token: str) -> Identity | None:
        """:meth:`lookup`, as the :class:`~hoopd.identity.base.TokenVerifier` interface."""
        return self.lookup(token)

    def lookup(self, token: str) -> Identity | None:
        """The identity for ``token``, or ``None`` if it is not a configured token
        or has expired.

        Every configured hash is compared, with :func:`hmac.compare_digest`, and the
        loop never stops early, so timing does not tell which entry matched or how
        many leading bytes agreed. Comparing hashes rather than tokens adds a second
        layer: even a leaky comparison would only reveal bytes of SHA-256 outputs,
        which give no way to construct a token that produces them.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = _digest(token)
        found: Identity | None = None
        for known, identity in self._entries:
            if hmac.compare_digest(known, digest):
                found = identity
        if found is None or found.expires_at is None:
            return found
        if self._clock() >= found.expires_at:
            return None
        return found
