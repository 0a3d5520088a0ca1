"""Mask rules checked and compiled once, when a :class:`hoopd.masking.Masker` is built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hoopd.masking.builtin import DETECTORS
from hoopd.masking.columns import ColumnPattern
from hoopd.masking.detector import REGEX_PREFIX, Detector, custom
from hoopd.masking.rules import MASK_STYLES, Column, MaskRule
from hoopd.masking.scanner import Entry
from hoopd.masking.styles import MIN_HMAC_KEY, Replacer


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    index: int
    bit: int
    patterns: tuple[ColumnPattern, ...]
    replacer: Replacer

    def covers(self, column: Column) -> bool:
        return any(pattern.matches(column) for pattern in self.patterns)


def compile_rules(
    rules: Sequence[MaskRule], hmac_key: bytes
) -> tuple[list[CompiledRule], list[Entry]]:
    """The rules in order, and every distinct detector with the first rule naming it.

    ``ValueError`` naming the rule for an unknown style or detector, a negative
    ``keep_last``, a rule with neither columns nor detectors, a bad column pattern or
    regex, or an ``hmac`` rule with a key shorter than 16 bytes.
    """
    compiled: list[CompiledRule] = []
    entries: list[Entry] = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        _check(rule, hmac_key)
        try:
            patterns = tuple(ColumnPattern(pattern) for pattern in rule.columns)
        except ValueError as exc:
            raise ValueError(f"mask rule {rule.name!r}: {exc}") from None
        replacer = Replacer(rule.style, rule.keep_last, hmac_key)
        compiled.append(CompiledRule(rule.name, index, 1 << index, patterns, replacer))
        for spec in rule.detectors:
            detector = _detector(rule, spec)
            if spec not in seen:
                seen.add(spec)
                entries.append(Entry(detector, replacer, 1 << index))
    return compiled, entries


def _check(rule: MaskRule, hmac_key: bytes) -> None:
    where = f"mask rule {rule.name!r}"
    if isinstance(rule.columns, str) or isinstance(rule.detectors, str):
        raise ValueError(f"{where}: columns and detectors must be sequences of strings")
    if rule.style not in MASK_STYLES:
        raise ValueError(f"{where}: unknown style {rule.style!r} (one of {', '.join(MASK_STYLES)})")
    if isinstance(rule.keep_last, bool) or not isinstance(rule.keep_last, int):
        raise ValueError(f"{where}: keep_last must be an integer")
    if rule.keep_last < 0:
        raise ValueError(f"{where}: keep_last must not be negative")
    if not rule.columns and not rule.detectors:
        raise ValueError(f"{where}: names neither columns nor detectors")
    # A short key makes tokens of small value spaces (SSNs, card numbers) guessable.
    if rule.style == "hmac" and len(hmac_key) < MIN_HMAC_KEY:
        raise ValueError(f"{where}: style hmac needs a key of at least {MIN_HMAC_KEY} bytes")


def _detector(rule: MaskRule, spec: str) -> Detector:
    if spec.startswith(REGEX_PREFIX):
        try:
            return custom(spec)
        except ValueError as exc:
            raise ValueError(f"mask rule {rule.name!r}: {exc}") from None
    detector = DETECTORS.get(spec)
    if detector is None:
        known = ", ".join(DETECTORS)
        raise ValueError(
            f"mask rule {rule.name!r}: unknown detector {spec!r} (known: {known}, regex:<pattern>)"
        )
    return detector
