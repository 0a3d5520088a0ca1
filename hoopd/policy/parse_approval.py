"""The fields of an ``approve`` rule: approvers, min_approvals, deadline, message."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Final

from yaml.nodes import Node, ScalarNode

from hoopd.policy.rules import Rule
from hoopd.policy.yamlread import FLOAT, INT, STR, Fields, Reader

_DURATION_RE: Final = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[smhd])+")
_DURATION_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
_UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_approval(reader: Reader, fields: Fields, what: str, rule: Rule) -> Rule | None:
    """``rule`` with its approval fields, or ``None`` with every problem recorded."""
    ok = True
    approvers: tuple[str, ...] = ()
    node = fields.get("approvers")
    if node is None:
        reader.problem(fields.node, f"{what}: missing approvers (the groups that may approve)")
        ok = False
    else:
        values = reader.texts(node, f"{what}: approvers")
        ok = values is not None
        approvers = tuple(value for value, _ in values or ())
    min_approvals = 1
    node = fields.get("min_approvals")
    if node is not None:
        count = reader.integer(node, f"{what}: min_approvals")
        if count is not None and count < 1:
            reader.problem(node, f"{what}: min_approvals must be at least 1 (got {count})")
            count = None
        ok = ok and count is not None
        min_approvals = count or 1
    deadline: float | None = None
    node = fields.get("deadline")
    if node is not None:
        deadline = _duration(reader, node, f"{what}: deadline")
        ok = ok and deadline is not None
    message = reader.optional_text(fields, "message", what)
    if not ok:
        return None
    return replace(
        rule,
        approvers=approvers,
        min_approvals=min_approvals,
        deadline_seconds=deadline,
        message=message,
    )


def _duration(reader: Reader, node: Node, what: str) -> float | None:
    """Seconds, from a number or from text such as ``90s``, ``15m``, ``1h30m``, ``2d``."""
    seconds: float | None = None
    if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
        seconds = reader.number(node, what)
    elif isinstance(node, ScalarNode) and node.tag == STR:
        text = str(node.value).replace(" ", "")
        if _DURATION_RE.fullmatch(text):
            seconds = sum(
                float(amount) * _UNIT_SECONDS[unit]
                for amount, unit in _DURATION_PART_RE.findall(text)
            )
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        reader.problem(
            node,
            f"{what} must be a duration of more than zero, such as 90s, 15m, 1h30m, 2d"
            " or a number of seconds",
        )
        return None
    return seconds
