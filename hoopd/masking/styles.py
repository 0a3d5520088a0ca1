"""How a masked value or match is replaced: ``redact``, ``keep-last`` and ``hmac``."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from hoopd.masking.rules import MaskStyle

REDACTED: Final = b"[redacted]"
"""What a whole value under a ``redact`` column rule becomes."""

HMAC_TOKEN_PREFIX: Final = "hm_"
HMAC_TOKEN_HEX: Final = 16
MIN_HMAC_KEY: Final = 16


def redact_marker(label: str) -> str:
    """What a detector's match becomes under ``redact``: ``[redacted:email]``."""
    return f"[redacted:{label}]"


class Replacer:
    """One rule's style, ready to apply.

    ``whole`` replaces a column value (UTF-8 bytes; ``UnicodeDecodeError`` when
    ``keep-last`` has to count characters of bytes that are not UTF-8); ``match``
    replaces a detector's match inside text. Both are deterministic: equal inputs
    give equal outputs for one key.
    """

    __slots__ = ("_hmac", "keep_last", "style")

    def __init__(self, style: MaskStyle, keep_last: int, hmac_key: bytes) -> None:
        self.style: MaskStyle = style
        self.keep_last = keep_last
        # Keyed once; each value then costs a copy of the keyed state, not a new key setup.
        self._hmac = hmac.new(hmac_key, digestmod=hashlib.sha256)

    def whole(self, value: bytes) -> bytes:
        if self.style == "redact":
            return REDACTED
        if self.style == "hmac":
            return self._token(value).encode()
        return self._keep_last(value.decode()).encode()

    def match(self, text: str, label: str) -> str:
        if self.style == "redact":
            return redact_marker(label)
        if self.style == "hmac":
            return self._token(text.encode("utf-8", "surrogatepass"))
        return self._keep_last(text)

    def _token(self, value: bytes) -> str:
        digest = self._hmac.copy()
        digest.update(value)
        return HMAC_TOKEN_PREFIX + digest.hexdigest()[:HMAC_TOKEN_HEX]

    def _keep_last(self, text: str) -> str:
        # A value no longer than what would be kept is masked entirely: keeping it
        # would show all of it.
        hidden = len(text) - self.keep_last
        if hidden <= 0:
            return "*" * len(text)
        return "*" * hidden + text[hidden:]
