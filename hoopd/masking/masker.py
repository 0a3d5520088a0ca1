"""Masking rows and text by a fixed set of rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from hoopd.masking.compiled import CompiledRule, compile_rules
from hoopd.masking.detector import Detector
from hoopd.masking.errors import MaskingError
from hoopd.masking.rules import Column, MaskRule
from hoopd.masking.scanner import Edit, Scanner, Unsettled

_PLAN_CACHE_ENTRIES: Final = 1024
"""Result shapes (and sets of rule names) remembered; both caches start over when full."""


@dataclass(frozen=True, slots=True)
class MaskPlan:
    """What :meth:`Masker.mask_row` does to each column of one result shape.

    ``whole`` lists ``(column index, rule index)`` for text columns whose whole
    value a column rule masks; ``refused`` the same for columns under a column rule
    that are not text (a non-NULL value there makes ``mask_row`` raise);
    ``scanned`` the other text columns, searched by the detectors. Rule indexes
    are positions in the rules the Masker was built with. A plan is only valid with
    the Masker that made it.
    """

    columns: tuple[Column, ...]
    whole: tuple[tuple[int, int], ...]
    refused: tuple[tuple[int, int], ...]
    scanned: tuple[int, ...]
    owner: object = field(repr=False, compare=False)


class Masker:
    """Applies mask rules to results.

    Built once per set of rules: every pattern and regex is compiled here, and
    ``ValueError`` names the rule when one is unusable. ``hmac_key`` keys the
    ``hmac`` style's tokens (at least 16 bytes when a rule uses it).

    Guarantees: a value is either returned unchanged, masked, or refused with
    :class:`MaskingError`, never passed on unmasked when a rule covers it and it
    cannot be masked. ``None`` (SQL NULL) stays ``None``. Outputs depend only on
    the rules, the key and the input.
    """

    def __init__(self, rules: Sequence[MaskRule], hmac_key: bytes) -> None:
        self._rules, entries = compile_rules(rules, hmac_key)
        self._column_rules: tuple[CompiledRule, ...] = tuple(r for r in self._rules if r.patterns)
        self._scanner = Scanner(entries)
        self._plans: dict[tuple[Column, ...], MaskPlan | None] = {}
        self._names: dict[int, tuple[str, ...]] = {0: ()}

    def plan(self, columns: Sequence[Column]) -> MaskPlan | None:
        """The plan for rows of these columns; ``None`` when no rule can touch any of
        them (no column rule covers one, and no detector rule or no text column), so
        rows can be forwarded as they are. Plans are cached by column list."""
        key = tuple(columns)
        if key in self._plans:
            return self._plans[key]
        whole: list[tuple[int, int]] = []
        refused: list[tuple[int, int]] = []
        scanned: list[int] = []
        for index, column in enumerate(key):
            rule = next((r for r in self._column_rules if r.covers(column)), None)
            if rule is not None:
                target = whole if column.text else refused
                target.append((index, rule.index))
            elif column.text and self._scanner.entries:
                scanned.append(index)
        plan = (
            MaskPlan(key, tuple(whole), tuple(refused), tuple(scanned), self)
            if whole or refused or scanned
            else None
        )
        if len(self._plans) >= _PLAN_CACHE_ENTRIES:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def mask_row(
        self, plan: MaskPlan, values: Sequence[bytes | None]
    ) -> tuple[list[bytes | None], list[str]]:
        """The row with every covered value masked, and the names of the rules that
        changed something (in rule order, each once).

        :class:`MaskingError` (refuse the row) when a column under a column rule is
        not text and its value is not NULL, when a value a rule must read is not
        valid UTF-8 (``keep-last`` columns, every value searched by detectors), when
        a value's finds keep exposing further finds (a pathological glued chain), or
        when the row does not fit the plan.
        """
        if plan.owner is not self:
            raise MaskingError("this plan was made by another Masker")
        if len(values) != len(plan.columns):
            raise MaskingError(
                f"a row of {len(values)} values does not fit this plan"
                f" ({len(plan.columns)} columns)"
            )
        out = list(values)
        for index, rule_index in plan.refused:
            if out[index] is not None:
                raise MaskingError(
                    f"column {plan.columns[index].name!r} is under mask rule"
                    f" {self._rules[rule_index].name!r} but is not text, so it cannot be masked"
                )
        bits = 0
        for index, rule_index in plan.whole:
            value = out[index]
            if value is None:
                continue
            rule = self._rules[rule_index]
            try:
                masked = rule.replacer.whole(value)
            except UnicodeDecodeError:
                raise self._not_utf8(plan, index, f"mask rule {rule.name!r}") from None
            if masked != value:
                out[index] = masked
                bits |= rule.bit
        scanner = self._scanner
        for index in plan.scanned:
            value = out[index]
            if value is None:
                continue
            try:
                masked, found = scanner.mask_bytes(value)
            except UnicodeDecodeError:
                raise self._not_utf8(plan, index, "the detectors") from None
            except Unsettled:
                raise MaskingError(
                    f"column {plan.columns[index].name!r} holds finds glued together in a way"
                    " the detectors cannot settle"
                ) from None
            if found:
                out[index] = masked
                bits |= found
        return out, self._rule_names(bits)

    def mask_text(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every detector match masked, and the names of the rules that
        changed something. Column rules play no part. Never raises: text whose finds
        keep exposing further finds (a pathological glued chain) becomes ``[redacted]``
        as a whole."""
        masked, bits = self._scanner.mask_text(text)
        return masked, self._rule_names(bits)

    def text_edits(self, text: str) -> tuple[list[Edit], list[str]]:
        """What :meth:`mask_text` changes in ``text``: ``(start, end, replacement)``
        spans of ``text``, sorted and disjoint (applying them gives ``mask_text``'s
        string), and the names of the rules that changed something. Never raises."""
        edits, bits = self._scanner.edits(text)
        return edits, self._rule_names(bits)

    @property
    def detectors(self) -> tuple[Detector, ...]:
        """Every detector the rules name, each once, in rule order."""
        return tuple(entry.detector for entry in self._scanner.entries)

    def _rule_names(self, bits: int) -> list[str]:
        names = self._names.get(bits)
        if names is None:
            names = tuple(dict.fromkeys(r.name for r in self._rules if bits & r.bit))
            if len(self._names) >= _PLAN_CACHE_ENTRIES:
                self._names.clear()
            self._names[bits] = names
        return list(names)

    @staticmethod
    def _not_utf8(plan: MaskPlan, index: int, reader: str) -> MaskingError:
        return MaskingError(
            f"column {plan.columns[index].name!r} is not valid UTF-8, so {reader} cannot read it"
        )
