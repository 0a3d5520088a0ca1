"""Detectors applied to text: find every match, merge overlaps, replace, repeat.

Replacing a match changes what surrounds its neighbours (a card number glued to an
IBAN hides the IBAN's start until the card is gone), so a text that changed is
searched again, replacements excluded, until nothing more is found or
:data:`MAX_PASSES` is reached.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hoopd.masking.detector import Detector, Span
from hoopd.masking.prefilter import Prefilter
from hoopd.masking.styles import Replacer

MAX_PASSES: Final = 8
"""Bounds the repeated search. Each pass after the first only happens when the one
before changed something; a chain of finds each hiding the next is rare past two."""

UNSETTLED_TEXT: Final = "[redacted]"

Edit = tuple[int, int, str]
"""``(start, end, replacement)``: ``text[start:end]`` becomes ``replacement``."""


class Unsettled(Exception):
    """Finds kept exposing further finds for more than :data:`MAX_PASSES` passes
    (only glued chains such as ``+15550100001+15550100002...`` do that). Rather than
    return text that a new search would still find something in, callers refuse the
    value. ``bits`` are the rules that had masked something by then."""

    def __init__(self, bits: int) -> None:
        super().__init__("masking did not settle")
        self.bits = bits


@dataclass(frozen=True, slots=True)
class Entry:
    """A detector, and the rule that owns it: its replacement and its bit."""

    detector: Detector
    replacer: Replacer
    bit: int


def _span_order(span: tuple[int, int, int]) -> tuple[int, int, int]:
    start, end, order = span
    return start, -end, order


class Scanner:
    """Every detector of every rule, each owned by the first rule that names it.

    Returned bit sets say which rules changed something. Overlapping matches are
    merged into one span, replaced in the style of the match that starts first
    (the longer one on a tie, then the earlier rule).
    """

    __slots__ = ("_prefilter", "entries")

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self._prefilter = Prefilter([(entry.detector, entry) for entry in self.entries])

    def mask_bytes(self, value: bytes) -> tuple[bytes, int]:
        """Mask UTF-8 ``value``; ``UnicodeDecodeError`` when it is not UTF-8, even
        when no detector could have matched (bytes in another encoding may still
        hold what the detectors look for); :class:`Unsettled` when finds keep
        exposing further finds past :data:`MAX_PASSES`."""
        selected = self._prefilter.select(value)
        if not selected:
            if not value.isascii():
                value.decode()
            return value, 0
        text, bits = self._mask(value.decode(), selected)
        return (text.encode() if bits else value), bits

    def mask_text(self, text: str) -> tuple[str, int]:
        """Mask ``text``; when it does not settle (see :class:`Unsettled`), the whole
        text becomes one ``[redacted]`` marker."""
        selected = self._prefilter.select(text.encode("utf-8", "surrogatepass"))
        if not selected:
            return text, 0
        try:
            return self._mask(text, selected)
        except Unsettled as exc:
            return UNSETTLED_TEXT, exc.bits

    def edits(self, text: str) -> tuple[list[Edit], int]:
        """What :meth:`mask_text` does to ``text``, as ``(start, end, replacement)``
        spans of ``text`` (sorted, disjoint): applying them gives the same string.
        Callers that keep other data positioned in the text (escape sequences of a
        terminal stream) need to know where each replacement came from."""
        selected = self._prefilter.select(text.encode("utf-8", "surrogatepass"))
        if not selected:
            return [], 0
        edits: list[tuple[int, int, int, int]] = []  # (start now, end now, start, end)
        try:
            masked, bits = self._mask(text, selected, edits)
        except Unsettled as exc:
            return [(0, len(text), UNSETTLED_TEXT)], exc.bits
        return [(start, end, masked[now:now_end]) for now, now_end, start, end in edits], bits

    def _mask(
        self, text: str, selected: list[Entry], edits: list[tuple[int, int, int, int]] | None = None
    ) -> tuple[str, int]:
        bits = 0
        replaced: list[Span] = []
        # One pass more than allowed, to tell "settled on the last pass" from "not settled".
        for _ in range(MAX_PASSES + 1):
            masked, found, replaced, writes = _one_pass(text, selected, replaced)
            if edits is not None:
                _track(edits, writes)
            if masked == text:
                return text, bits
            text = masked
            bits |= found
            selected = self._prefilter.select(text.encode("utf-8", "surrogatepass"))
            if not selected:
                return text, bits
        raise Unsettled(bits)


def _overlaps(start: int, end: int, replaced: list[Span], ends: list[int]) -> bool:
    index = bisect_right(ends, start)
    return index < len(replaced) and replaced[index][0] < end


def _track(edits: list[tuple[int, int, int, int]], writes: list[tuple[int, int, int]]) -> None:
    """Adds one pass's writes to ``edits``, which map spans of the current text to
    spans of the original. A pass only matches text no earlier pass replaced, so each
    write covers original text, shifted by the replacements before it."""
    old = list(edits)
    edits.clear()
    shift = 0  # now - original, before the position being looked at
    events = sorted(
        [(s, e, -1, i) for i, (s, e, _, _) in enumerate(old)]
        + [(s, e, n, -1) for s, e, n in writes]
    )
    moved = 0  # how far this pass's writes so far moved later text
    for start, end, new_length, index in events:
        if index >= 0:
            _, _, o_start, o_end = old[index]
            edits.append((start + moved, end + moved, o_start, o_end))
            shift = end - o_end
        else:
            edits.append((start + moved, start + moved + new_length, start - shift, end - shift))
            moved += new_length - (end - start)


def _one_pass(
    text: str, entries: list[Entry], replaced: list[Span]
) -> tuple[str, int, list[Span], list[tuple[int, int, int]]]:
    """One search and replace. ``replaced`` are the spans earlier passes wrote (sorted,
    disjoint); matches touching them are ignored, so a replacement is never masked
    again (a custom regex may match ``[redacted:regex]`` itself). Returns the text,
    the rules that changed it, every replacement span in the new text, and this
    pass's writes as ``(start, end, replacement length)`` in the old text."""
    ends = [end for _, end in replaced]
    spans = [
        (start, end, order)
        for order, entry in enumerate(entries)
        for start, end in entry.detector.find(text)
        if not (replaced and _overlaps(start, end, replaced, ends))
    ]
    if not spans:
        return text, 0, replaced, []
    spans.sort(key=_span_order)
    merged: list[tuple[int, int, int]] = []
    for start, end, order in spans:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            if end > last[1]:
                merged[-1] = (last[0], end, last[2])
            continue
        merged.append((start, end, order))
    pieces: list[str] = []
    writes: list[tuple[int, int, int]] = []  # (old start, old end, new length)
    bits = 0
    done = 0
    for start, end, order in merged:
        entry = entries[order]
        original = text[start:end]
        replacement = entry.replacer.match(original, entry.detector.label)
        if replacement != original:
            bits |= entry.bit
        pieces.append(text[done:start])
        pieces.append(replacement)
        writes.append((start, end, len(replacement)))
        done = end
    pieces.append(text[done:])
    return "".join(pieces), bits, _shifted(replaced, writes), writes


def _shifted(replaced: list[Span], writes: list[tuple[int, int, int]]) -> list[Span]:
    """Earlier replacements and this pass's, in the coordinates of the new text."""
    events = sorted([(s, e, -1) for s, e in replaced] + writes)
    result: list[Span] = []
    shift = 0
    for start, end, new_length in events:
        if new_length < 0:
            result.append((start + shift, end + shift))
        else:
            result.append((start + shift, start + shift + new_length))
            shift += new_length - (end - start)
    return result
