"""Which runs of digits are card numbers, phone numbers or IBANs.

The regexes in :mod:`hoopd.masking.builtin` only find runs (digit groups, or for
IBANs chunks of letters and digits) cheaply and without backtracking; the functions
here decide, in Python, which part of a run is worth masking. Doing it here keeps the
regexes linear and the rules readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from hoopd.masking.checks import iban_valid, luhn_valid
from hoopd.masking.detector import Span

_DIGIT_GROUP: Final = re.compile(r"[0-9]+")
_PHONE_TOKEN: Final = re.compile(r"(\()?([0-9]+)\)?|([ .-])")
_IBAN_START: Final = re.compile(r"[A-Za-z]{2}[0-9]{2}")

CARD_ISSUER_DIGITS: Final = frozenset("23456")
"""First digits of the major networks' numbers (Visa, Mastercard, Amex, Discover, JCB,
Diners, UnionPay, Maestro, Mir). Airline (1), petroleum (7), health (8) and national
(9, 0) numbers are left alone: a random id is far likelier there than a card."""


def card_spans(match: re.Match[str]) -> Iterator[Span]:
    """Card numbers inside a run of digit groups separated by single spaces or dashes.

    A card is 13 to 19 digits, either one unbroken group or several groups of at
    least three digits each, starting with an issuer digit and passing Luhn. Runs
    can hold more than a card (``4111 1111 1111 1111 2031``); the longest valid
    window from the left is taken, then the search goes on after it.
    """
    run = match.group()
    base = match.start()
    groups = [g.span() for g in _DIGIT_GROUP.finditer(run)]
    i = 0
    while i < len(groups):
        last = _card_window(run, groups, i)
        if last is None:
            i += 1
            continue
        yield base + groups[i][0], base + groups[last][1]
        i = last + 1


def _card_window(run: str, groups: list[Span], first: int) -> int | None:
    """The last group of the longest card starting at group ``first``, if any."""
    ends: list[int] = []
    total = 0
    first_length = groups[first][1] - groups[first][0]
    for j in range(first, len(groups)):
        length = groups[j][1] - groups[j][0]
        # Short groups are counts, dates and list items, not parts of a card.
        if j > first and (length < 3 or first_length < 3):
            break
        total += length
        if total > 19:
            break
        if total >= 13:
            ends.append(j)
    for j in reversed(ends):
        digits = "".join(run[start:end] for start, end in groups[first : j + 1])
        if digits[0] in CARD_ISSUER_DIGITS and luhn_valid(digits):
            return j
    return None


def phone_spans(match: re.Match[str]) -> Iterator[Span]:
    """The whole run, when it is a phone number.

    International (``+`` first): 10 to 15 digits, the first not 0. National: 10 or
    11 digits, one separator kind throughout, in one of the common shapes: a first
    group of 1 to 5 digits (possibly in parentheses) followed by groups of 3 or more
    digits, the last of at least 4 (``415-555-2671``, ``(415) 555-2671``,
    ``020 7946 0958``, ``1-800-555-0199``), or five pairs (``01 23 45 67 89``). Not
    taken: a run that goes on into a word, and four dot-separated groups of up to
    three digits (IPv4). (The regex already skips runs starting with a year.)
    """
    text = match.string
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] in "_@"):
        return
    run = match.group()
    groups: list[tuple[str, bool]] = []
    separators: set[str] = set()
    pending = ""
    for token in _PHONE_TOKEN.finditer(run):
        paren, digits, separator = token.groups()
        if separator:
            pending = separator
            continue
        if pending and groups and not groups[-1][1] and not paren:
            separators.add(pending)
        pending = ""
        groups.append((digits, paren is not None))
    if _is_phone(run.startswith("+"), groups, separators):
        yield match.span()


def _is_phone(international: bool, groups: list[tuple[str, bool]], separators: set[str]) -> bool:
    digits = "".join(d for d, _ in groups)
    if international:
        return 10 <= len(digits) <= 15 and digits[0] != "0"
    if not 10 <= len(digits) <= 11 or len(separators) > 1:
        return False
    lengths = [len(d) for d, _ in groups]
    first_paren = groups[0][1]
    if any(paren for _, paren in groups[1:]) or lengths[0] > 5:
        return False
    if separators == {"."} and len(groups) == 4 and max(lengths) <= 3:
        return False
    if lengths == [2, 2, 2, 2, 2]:
        return True
    if len(groups) < (2 if first_paren else 3):
        return False
    return min(lengths[1:]) >= 3 and lengths[-1] >= 4


def iban_spans(match: re.Match[str]) -> Iterator[Span]:
    """IBANs in a run of chunks of letters and digits separated by single spaces.

    Printed IBANs come in groups of four, and the words around one must not hide
    it, so every chunk that starts like an IBAN (two letters, two digits) is tried
    with the longest run of following chunks that makes a valid IBAN.
    """
    run = match.group()
    base = match.start()
    chunks: list[Span] = []
    start = 0
    for part in run.split(" "):
        chunks.append((start, start + len(part)))
        start += len(part) + 1
    first = 0
    while first < len(chunks):
        last = _iban_window(run, chunks, first)
        if last is None:
            first += 1
            continue
        yield base + chunks[first][0], base + chunks[last][1]
        first = last + 1


def _iban_window(run: str, chunks: list[Span], first: int) -> int | None:
    """The last chunk of the longest IBAN starting at chunk ``first``, if any."""
    start = chunks[first][0]
    if not _IBAN_START.match(run, start):
        return None
    ends: list[int] = []
    length = 0
    for j in range(first, len(chunks)):
        length += chunks[j][1] - chunks[j][0]
        if length > 34:
            break
        if length >= 15:
            ends.append(j)
    for j in reversed(ends):
        candidate = "".join(run[s:e] for s, e in chunks[first : j + 1]).upper()
        if iban_valid(candidate):
            return j
    return None
