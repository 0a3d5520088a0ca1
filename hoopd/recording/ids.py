"""Session ids: 16 characters, sortable by start time, unique within a data dir.

An id is 10 characters of milliseconds since the Unix epoch followed by 6
characters of a per-millisecond counter that starts at a random value, both in
lowercase Crockford base32 (no i, l, o, u: nothing to misread when typing one).
Ids from one generator strictly increase even if the clock steps back, and only
one gateway writes a data dir at a time (the journal lock), so ids never repeat
there; the random start keeps ids from different data dirs apart.
"""

from __future__ import annotations

import secrets
import time
from typing import Final

ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS: Final = 10
_COUNTER_CHARS: Final = 6
_COUNTER_LIMIT: Final = 32**_COUNTER_CHARS
ID_LENGTH: Final = _TIME_CHARS + _COUNTER_CHARS


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


class SessionIdGenerator:
    """Makes strictly increasing session ids."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._counter = 0

    def new_id(self) -> str:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            # Start low in the range so a burst within one millisecond cannot overflow.
            self._counter = secrets.randbelow(_COUNTER_LIMIT // 2)
        else:
            self._counter += 1
            if self._counter >= _COUNTER_LIMIT:
                self._last_ms += 1
                self._counter = 0
        return _base32(self._last_ms, _TIME_CHARS) + _base32(self._counter, _COUNTER_CHARS)
