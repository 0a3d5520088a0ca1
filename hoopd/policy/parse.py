"""One policy file, from YAML to rules, mask rules and defaults entries.

Every problem is recorded with its file and line; a file with problems yields
whatever parts of it were valid, so the loader can go on collecting problems.
Rule names are checked for uniqueness across the directory by the loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal, cast

from yaml.nodes import Node, SequenceNode

from hoopd.policy.checks import Match
from hoopd.policy.parse_approval import parse_approval
from hoopd.policy.parse_defaults import parse_defaults_entry
from hoopd.policy.parse_mask import MASK_KEYS, parse_mask
from hoopd.policy.parse_match import parse_match
from hoopd.policy.rules import (
    RULE_ACTIONS,
    DefaultsEntry,
    MaskRule,
    Rule,
)
from hoopd.policy.yamlread import Fields, Reader

FILE_KEYS: Final = ("rules", "defaults")
RULE_KEYS: Final = (
    "name",
    "description",
    "match",
    "action",
    "message",
    "approvers",
    "min_approvals",
    "deadline",
    *MASK_KEYS,
)
_ACTION_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "allow": (),
    "deny": ("message",),
    "approve": ("approvers", "min_approvals", "deadline", "message"),
    "mask": MASK_KEYS,
}
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(slots=True)
class ParsedFile:
    """What one file contributed, in file order; ``names`` pairs each rule name with
    where it was defined (``file:line``)."""

    rules: list[Rule | MaskRule] = field(default_factory=list)
    defaults: list[DefaultsEntry] = field(default_factory=list)
    names: list[tuple[str, str]] = field(default_factory=list)


def parse_policy_file(reader: Reader, root: Node | None) -> ParsedFile:
    parsed = ParsedFile()
    if root is None:
        reader.problems.add(
            f"{reader.path}:1", "empty file (a policy file holds rules: or defaults:)"
        )
        return parsed
    fields = reader.fields(root, "policy file", FILE_KEYS)
    if fields is None:
        return parsed
    if "rules" not in fields and "defaults" not in fields:
        reader.problem(root, "a policy file must have rules:, defaults: or both")
    for index, item in enumerate(_items(reader, fields, "rules")):
        _rule(reader, item, index, parsed)
    for index, item in enumerate(_items(reader, fields, "defaults")):
        entry = parse_defaults_entry(reader, item, index)
        if entry is not None:
            parsed.defaults.append(entry)
    return parsed


def _items(reader: Reader, fields: Fields, key: str) -> list[Node]:
    node = fields.get(key)
    if node is None:
        return []
    if not isinstance(node, SequenceNode):
        reader.problem(node, f"{key} must be a list (each item starting with '- ')")
        return []
    return list(node.value)


def _rule(reader: Reader, node: Node, index: int, parsed: ParsedFile) -> None:
    what = f"rules[{index}]"
    fields = reader.fields(node, what, RULE_KEYS)
    if fields is None:
        return
    name = _rule_name(reader, fields, what)
    if name is not None:
        what = f"rule {name!r}"
        parsed.names.append((name, reader.where(node)))
    action = _action(reader, fields, what)
    match = parse_match(reader, fields.get("match"), what)
    description = reader.optional_text(fields, "description", what)
    if action is None:
        return
    _refuse_other_action_keys(reader, fields, action, what)
    # Fields are checked even when the name or match is bad, so that every problem
    # is reported in one run; only a rule without problems is kept.
    complete = name is not None and match is not None
    source = reader.where(node)
    if action == "mask":
        mask = parse_mask(reader, fields, what, name or "", source, match or Match(()), description)
        if mask is not None and complete:
            parsed.rules.append(mask)
        return
    rule = Rule(
        name or "", source, cast(Literal["allow", "deny", "approve"], action), match or Match(()),
        description=description,
    )  # fmt: skip
    checked: Rule | None = rule
    if action == "deny":
        message = _required_text(reader, fields, "message", what, "the text the user is shown")
        checked = None if message is None else replace(rule, message=message)
    elif action == "approve":
        checked = parse_approval(reader, fields, what, rule)
    if checked is not None and complete:
        parsed.rules.append(checked)


def _rule_name(reader: Reader, fields: Fields, what: str) -> str | None:
    node = fields.get("name")
    if node is None:
        reader.problem(fields.node, f"{what}: missing name (every rule needs a unique name)")
        return None
    name = reader.text(node, f"{what}: name")
    if name is not None and not _NAME_RE.fullmatch(name):
        reader.problem(
            node,
            f"{what}: name {name!r} may contain only letters, digits, '_', '.' and '-'"
            " and must start with a letter or digit",
        )
        return None
    return name


def _action(reader: Reader, fields: Fields, what: str) -> str | None:
    node = fields.get("action")
    choices = ", ".join(RULE_ACTIONS)
    if node is None:
        reader.problem(fields.node, f"{what}: missing action (one of {choices})")
        return None
    return reader.choice(node, f"{what}: action", RULE_ACTIONS)


def _refuse_other_action_keys(reader: Reader, fields: Fields, action: str, what: str) -> None:
    for key in fields:
        owners = [a for a, keys in _ACTION_KEYS.items() if key in keys]
        if owners and action not in owners:
            needed = " or ".join(f"action: {a}" for a in owners)
            reader.problem(
                fields.key_node(key), f"{what}: {key!r} is used only with {needed}, not {action}"
            )


def _required_text(reader: Reader, fields: Fields, key: str, what: str, purpose: str) -> str | None:
    node = fields.get(key)
    if node is None:
        reader.problem(fields.node, f"{what}: missing {key} ({purpose})")
        return None
    return reader.text(node, f"{what}: {key}")
