"""Approval request ids: 10 random characters of lowercase Crockford base32.

50 random bits: unguessable enough that an id alone grants nothing (every action also
needs a token), short enough to read out or type. The alphabet has no i, l, o or u, and
:func:`normalise_request_id` forgives the usual slips (upper case, ``I``/``L`` for 1,
``O`` for 0, hyphens and spaces), so an id typed from a chat message still matches.
"""

from __future__ import annotations

import secrets
from typing import Final

from hoopd.recording.ids import ALPHABET

ID_LENGTH: Final = 10
_CONFUSABLE: Final = str.maketrans({"i": "1", "l": "1", "o": "0", "-": None, " ": None})


def new_request_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH))


def normalise_request_id(text: str) -> str | None:
    """The canonical form of a typed id, or None when it cannot be one."""
    canonical = text.strip().lower().translate(_CONFUSABLE)
    if len(canonical) != ID_LENGTH or any(ch not in ALPHABET for ch in canonical):
        return None
    return canonical
