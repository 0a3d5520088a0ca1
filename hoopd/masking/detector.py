"""A content detector: a compiled regex, the spans of its matches worth masking, and
the cheap facts about raw bytes that must hold before the regex is worth running."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

#: Names a detector of one's own: ``regex:<pattern>``.
REGEX_PREFIX: Final = "regex:"

Span = tuple[int, int]
SpanPicker = Callable[[re.Match[str]], Iterable[Span]]


def whole_match(match: re.Match[str]) -> Iterable[Span]:
    return (match.span(),)


@dataclass(frozen=True, slots=True)
class Detector:
    """Finds spans of sensitive text.

    ``pick`` turns one regex match into the spans to mask (none when a validator
    such as Luhn rejects it, a narrower span such as the token after ``Bearer``).
    ``needles``, ``min_digits`` and ``hint`` describe every text the detector can
    find anything in: its UTF-8 bytes contain at least one of the needles (when
    there are any) and at least ``min_digits`` ASCII digits, and ``hint`` (a bytes
    regex, cheaper than the detector's) finds something in them. The pre-filter
    relies on this to skip the detector, so a detector must never find a span in
    text that breaks it.
    """

    name: str
    regex: re.Pattern[str]
    pick: SpanPicker = whole_match
    needles: tuple[bytes, ...] = ()
    min_digits: int = 0
    hint: re.Pattern[bytes] | None = None

    @property
    def label(self) -> str:
        """What the redaction marker calls this detector's finds."""
        return "regex" if self.name.startswith(REGEX_PREFIX) else self.name

    def find(self, text: str) -> Iterator[Span]:
        """Spans to mask in ``text``, in order of their matches, never empty ones."""
        for match in self.regex.finditer(text):
            for start, end in self.pick(match):
                if end > start:
                    yield start, end


def custom(spec: str) -> Detector:
    """The detector for ``regex:<pattern>``; ``ValueError`` naming it if it does not compile."""
    pattern = spec.removeprefix(REGEX_PREFIX)
    if not pattern:
        raise ValueError(f"detector {spec!r} has an empty pattern")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"detector {spec!r} is not a valid regular expression: {exc}") from None
    return Detector(spec, regex)
