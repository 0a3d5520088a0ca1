"""One ``defaults`` entry: which connections it selects and what it says for them."""

from __future__ import annotations

from typing import Final, Literal, cast

from yaml.nodes import Node

from hoopd.policy.names import Globs
from hoopd.policy.rules import DefaultsEntry
from hoopd.policy.yamlread import Reader

DEFAULTS_KEYS: Final = ("connection", "labels", "unmatched", "unparseable")


def parse_defaults_entry(reader: Reader, node: Node, index: int) -> DefaultsEntry | None:
    """The entry, or ``None`` with every problem recorded."""
    what = f"defaults[{index}]"
    fields = reader.fields(node, what, DEFAULTS_KEYS)
    if fields is None:
        return None
    ok = True
    connection: Globs | None = None
    value = fields.get("connection")
    if value is not None:
        names = reader.texts(value, f"{what}: connection")
        ok = names is not None
        connection = Globs(name for name, _ in names or ())
    labels: dict[str, str] = {}
    value = fields.get("labels")
    if value is not None:
        read = reader.text_map(value, f"{what}: labels")
        ok = ok and read is not None
        labels = read or {}
    unmatched: str | None = None
    value = fields.get("unmatched")
    if value is not None:
        unmatched = reader.choice(value, f"{what}: unmatched", ("allow", "deny"))
        ok = ok and unmatched is not None
    unparseable_deny = False
    value = fields.get("unparseable")
    if value is not None:
        if reader.choice(value, f"{what}: unparseable", ("deny",)) is None:
            ok = False
        unparseable_deny = True
    if "unmatched" not in fields and "unparseable" not in fields:
        reader.problem(fields.node, f"{what}: says nothing (give unmatched, unparseable or both)")
        ok = False
    if not ok:
        return None
    return DefaultsEntry(
        reader.where(node),
        connection,
        labels,
        cast(Literal["allow", "deny"] | None, unmatched),
        unparseable_deny,
    )
