"""Reading policy YAML while keeping the line every value came from.

Files are composed (``yaml.compose`` with the safe loader), not loaded, so every
value still carries its position and each problem can be reported as
``file:line: problem``. A :class:`Reader` records a problem for every bad value
and hands back ``None`` instead, so that reading goes on and one run of
``hoopd policy check`` reports every problem in a directory, not only the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR: Final = "tag:yaml.org,2002:str"
BOOL: Final = "tag:yaml.org,2002:bool"
INT: Final = "tag:yaml.org,2002:int"
FLOAT: Final = "tag:yaml.org,2002:float"
NULL: Final = "tag:yaml.org,2002:null"

# Only its stateless scalar conversions are used (YAML 1.1 ints, floats, booleans).
_SCALARS: Final = SafeConstructor()


class Problems:
    """Every problem found so far, each a complete ``where: what`` line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{where}: {message}")


def compose_file(path: Path, problems: Problems) -> Node | None:
    """The YAML node tree of one file, or ``None`` (with a problem recorded) when the
    file cannot be read or is not one valid YAML document. An empty file is ``None``
    with no problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(str(path), f"cannot read: {exc.strerror}")
        return None
    except UnicodeDecodeError:
        problems.add(f"{path}:1", "not valid UTF-8")
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problems.add(f"{path}:{line}", f"not valid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.add(f"{path}:1", f"not valid YAML: {exc}")
    return None


def line_of(node: Node) -> int:
    mark = node.start_mark
    return mark.line + 1 if mark is not None else 1


def shown(node: Node) -> str:
    """A node as a message may show it: short, and saying what kind of value it is."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "nothing"
    text = str(node.value)
    text = text if len(text) <= 60 else text[:57] + "..."
    if node.tag == STR:
        return repr(text)
    if node.tag == BOOL:
        return f"{text} (a boolean)"
    if node.tag in (INT, FLOAT):
        return f"{text} (a number)"
    return f"{text} ({node.tag})"


class Fields:
    """The keys of one YAML mapping, each with its key node and value node."""

    def __init__(self, node: MappingNode, entries: dict[str, tuple[Node, Node]]) -> None:
        self.node = node
        self._entries = entries

    def get(self, name: str) -> Node | None:
        entry = self._entries.get(name)
        return entry[1] if entry is not None else None

    def key_node(self, name: str) -> Node:
        entry = self._entries.get(name)
        return entry[0] if entry is not None else self.node

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


class Reader:
    """Typed access to the nodes of one file.

    Each getter returns the value, or records a problem naming the file, the line
    and ``what`` the value is, and returns ``None``.
    """

    def __init__(self, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems

    def where(self, node: Node) -> str:
        return f"{self.path}:{line_of(node)}"

    def problem(self, node: Node, message: str) -> None:
        self.problems.add(self.where(node), message)

    def fields(
        self,
        node: Node,
        what: str,
        known: Collection[str],
        hints: Mapping[str, str] | None = None,
    ) -> Fields | None:
        """A mapping's keys; keys outside ``known`` and repeated keys are problems.

        ``hints`` maps a likely mistaken key to advice on what to write instead.
        """
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping (got {shown(node)})")
            return None
        entries: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if not (isinstance(key, ScalarNode) and key.tag == STR):
                self.problem(key, f"{what}: keys must be names (got {shown(key)})")
                continue
            name = str(key.value)
            if name in entries:
                first = line_of(entries[name][0])
                self.problem(key, f"{what}: {name!r} is given twice (first at line {first})")
                continue
            if name not in known:
                self.problem(key, f"{what}: unknown key {name!r}{_hint(name, known, hints)}")
                continue
            entries[name] = (key, value)
        return Fields(node, entries)

    def text(self, node: Node, what: str) -> str | None:
        """A non-empty string: any scalar but null, as written.

        YAML 1.1 reads ``no``, ``on`` and ``1.10`` as a boolean and numbers; where
        text is expected the text written is what was meant, so it is taken as is.
        """
        if not isinstance(node, ScalarNode) or node.tag == NULL:
            self.problem(node, f"{what} must be a string (got {shown(node)})")
            return None
        value = str(node.value)
        if not value.strip():
            self.problem(node, f"{what} must not be empty")
            return None
        return value

    def optional_text(self, fields: Fields, key: str, what: str) -> str | None:
        """A key's non-empty string, or ``None`` when the key is left out or bad."""
        node = fields.get(key)
        return None if node is None else self.text(node, f"{what}: {key}")

    def choice(self, node: Node, what: str, options: tuple[str, ...]) -> str | None:
        """One of ``options``."""
        value = self.text(node, what)
        if value is not None and value not in options:
            self.problem(node, f"{what} must be {_options(options)} (got {value!r})")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not (isinstance(node, ScalarNode) and node.tag == BOOL):
            self.problem(node, f"{what} must be true or false (got {shown(node)})")
            return None
        return _SCALARS.construct_yaml_bool(node)

    def integer(self, node: Node, what: str) -> int | None:
        if not (isinstance(node, ScalarNode) and node.tag == INT):
            self.problem(node, f"{what} must be a whole number (got {shown(node)})")
            return None
        return _SCALARS.construct_yaml_int(node)

    def number(self, node: Node, what: str) -> float | None:
        if isinstance(node, ScalarNode) and node.tag == INT:
            return float(_SCALARS.construct_yaml_int(node))
        if isinstance(node, ScalarNode) and node.tag == FLOAT:
            return _SCALARS.construct_yaml_float(node)
        self.problem(node, f"{what} must be a number (got {shown(node)})")
        return None

    def texts(self, node: Node, what: str) -> list[tuple[str, Node]] | None:
        """A non-empty list of non-empty strings, each with its node; one string
        stands for a list of one. Repeats are dropped."""
        if isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a string or a list of strings (got a mapping)")
            return None
        items: list[Node] = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            self.problem(node, f"{what} must not be an empty list")
            return None
        values: list[tuple[str, Node]] = []
        seen: set[str] = set()
        ok = True
        for item in items:
            value = self.text(item, what)
            if value is None:
                ok = False
            elif value not in seen:
                seen.add(value)
                values.append((value, item))
        return values if ok else None

    def text_map(self, node: Node, what: str) -> dict[str, str] | None:
        """A non-empty mapping of names to strings (labels)."""
        fields = self.fields(node, what, _ANY_KEY)
        if fields is None:
            return None
        if not list(fields):
            self.problem(node, f"{what} must not be empty")
            return None
        result: dict[str, str] = {}
        ok = True
        for name in fields:
            value_node = fields.get(name)
            assert value_node is not None
            value = self.text(value_node, f"{what}.{name}")
            if value is None:
                ok = False
            else:
                result[name] = value
        return result if ok else None


class _AnyKey(Collection[str]):
    """Accepts every key: for mappings whose keys are data (labels), not syntax."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_ANY_KEY: Final = _AnyKey()


def _hint(name: str, known: Collection[str], hints: Mapping[str, str] | None) -> str:
    if hints and name in hints:
        return f" ({hints[name]})"
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if known:
        return f" (known keys: {', '.join(sorted(known))})"
    return ""


def _options(options: tuple[str, ...]) -> str:
    if len(options) <= 2:
        return " or ".join(options)
    return "one of " + ", ".join(options)
