"""The fields of a ``mask`` rule: columns, detectors, style."""

from __future__ import annotations

import re
from typing import Final

from hoopd.policy.checks import Match
from hoopd.policy.rules import MASK_DETECTORS, MASK_STYLES, REGEX_DETECTOR_PREFIX, MaskRule
from hoopd.policy.yamlread import Fields, Reader

MASK_KEYS: Final = ("columns", "detectors", "style", "keep_last")


def parse_mask(
    reader: Reader,
    fields: Fields,
    what: str,
    name: str,
    source: str,
    match: Match,
    description: str | None,
) -> MaskRule | None:
    """The mask rule, or ``None`` with every problem recorded."""
    ok = True
    columns: list[str] = []
    node = fields.get("columns")
    if node is not None:
        values = reader.texts(node, f"{what}: columns")
        ok = values is not None
        for value, item in values or ():
            parts = value.split(".")
            if len(parts) > 3 or not all(parts):
                reader.problem(
                    item,
                    f"{what}: columns: {value!r} is not column, table.column or"
                    " schema.table.column",
                )
                ok = False
            columns.append(value)
    detectors: list[str] = []
    node = fields.get("detectors")
    if node is not None:
        values = reader.texts(node, f"{what}: detectors")
        ok = ok and values is not None
        for value, item in values or ():
            problem = _detector_problem(value)
            if problem is not None:
                reader.problem(item, f"{what}: detectors: {problem}")
                ok = False
            detectors.append(value)
    if "columns" not in fields and "detectors" not in fields:
        reader.problem(fields.node, f"{what}: a mask rule needs columns, detectors or both")
        ok = False
    style = "redact"
    node = fields.get("style")
    if node is not None:
        chosen = reader.choice(node, f"{what}: style", MASK_STYLES)
        ok = ok and chosen is not None
        style = chosen or style
    keep_last = 4
    node = fields.get("keep_last")
    if node is not None:
        count = reader.integer(node, f"{what}: keep_last")
        if count is not None and count < 0:
            reader.problem(node, f"{what}: keep_last must be 0 or more (got {count})")
            count = None
        elif count is not None and style != "keep-last":
            reader.problem(node, f"{what}: keep_last is used only with style: keep-last")
            count = None
        ok = ok and count is not None
        keep_last = 4 if count is None else count
    if not ok:
        return None
    return MaskRule(
        name, source, match, tuple(columns), tuple(detectors), style, keep_last, description
    )


def _detector_problem(value: str) -> str | None:
    if value.startswith(REGEX_DETECTOR_PREFIX):
        pattern = value.removeprefix(REGEX_DETECTOR_PREFIX)
        if not pattern:
            return f"{value!r} has an empty regular expression"
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{value!r} is not a valid regular expression: {exc}"
        return None
    if value in MASK_DETECTORS:
        return None
    known = ", ".join(MASK_DETECTORS)
    return f"unknown detector {value!r} (known: {known}, or regex:<pattern>)"
