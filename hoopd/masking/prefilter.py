"""The cheap test that keeps most values away from the regexes.

Each detector states what any text it can find something in must contain (a needle
such as ``@``, a number of digits, a short pattern such as two letters and two
digits for an IBAN). These are answered on the raw bytes of a value, in C; a value
with no candidate detector is never decoded or searched.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Final, Generic, TypeVar

from hoopd.masking.detector import Detector

_DIGITS: Final = b"0123456789"

T = TypeVar("T")


class Prefilter(Generic[T]):
    """Picks, for one value, the entries whose detector could find something in it.

    Entries come back in the order given. Needles are ASCII, and no UTF-8 sequence
    of a non-ASCII character contains an ASCII byte, so testing the UTF-8 bytes is
    exact for text.
    """

    __slots__ = ("_any_needle", "_checks", "_needleless", "_needs_digits", "_reject_below")

    def __init__(self, entries: Sequence[tuple[Detector, T]]) -> None:
        self._checks: tuple[tuple[tuple[bytes, ...], int, re.Pattern[bytes] | None, T], ...] = (
            tuple((d.needles, d.min_digits, d.hint, entry) for d, entry in entries)
        )
        self._needleless = tuple(check for check in self._checks if not check[0])
        self._needs_digits = any(d.min_digits for d, _ in entries)
        needles = sorted({n for d, _ in entries for n in d.needles})
        self._any_needle = re.compile(b"|".join(map(re.escape, needles))) if needles else None
        # Below this many digits, a value without any needle has no candidate at all:
        # every detector either needs a needle or at least this many digits.
        self._reject_below = min(
            (d.min_digits for d, _ in entries if not d.needles), default=sys.maxsize
        )

    def select(self, data: bytes) -> list[T]:
        # Counting digits is a translate() that copies the value: done once, only
        # when some detector asks.
        digits = len(data) - len(data.translate(None, _DIGITS)) if self._needs_digits else 0
        # One search for all needles at once: most values hold none, and then only
        # the detectors that need digits are left to ask, if any.
        has_needle = self._any_needle is not None and self._any_needle.search(data) is not None
        if not has_needle and digits < self._reject_below:
            return []
        selected = []
        for needles, min_digits, hint, entry in self._checks if has_needle else self._needleless:
            if digits < min_digits:
                continue
            if needles:
                for needle in needles:
                    if needle in data:
                        break
                else:
                    continue
            if hint is not None and hint.search(data) is None:
                continue
            selected.append(entry)
        return selected
