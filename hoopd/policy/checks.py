"""The match keys of a rule, each compiled into a check.

A check looks at the subject (who, which connection) or at the statement's
classification and says whether its key holds; ``describe`` says why, for
``hoopd policy explain``. Checks never raise for a well-formed subject and
classification; :meth:`hoopd.policy.Policy.judge` turns anything else into a deny.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

from hoopd.events import HostClassification, SqlClassification
from hoopd.policy.names import Globs, SqlNames
from hoopd.policy.verdict import Subject


class Check(Protocol):
    key: str
    cost: int
    """Checks run cheapest first; a rule stops at the first that fails."""

    def holds(self, subject: Subject, c: SqlClassification) -> bool: ...

    def describe(self, subject: Subject, c: SqlClassification) -> str: ...


def _listed(items: Iterable[str]) -> str:
    return "[" + ", ".join(items) + "]"


class GlobCheck:
    """identity.subject, identity.actor, identity.issuer, connection, protocol: one
    value against any-of globs."""

    __slots__ = ("_value", "cost", "globs", "key")

    def __init__(self, key: str, globs: Globs, value: Callable[[Subject], str]) -> None:
        self.key, self.globs, self._value, self.cost = key, globs, value, 2

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return self.globs.matches(self._value(subject))

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        value = self._value(subject)
        pattern = self.globs.first_match(value)
        if pattern is None:
            return f"{value!r} matches none of {_listed(self.globs.patterns)}"
        return f"{value!r} matches {pattern!r}"


class GlobsAnyCheck:
    """identity.groups, identity.actor_chain: any member against any-of globs."""

    __slots__ = ("_values", "cost", "globs", "key")

    def __init__(self, key: str, globs: Globs, values: Callable[[Subject], Sequence[str]]) -> None:
        self.key, self.globs, self._values, self.cost = key, globs, values, 3

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        matches = self.globs.matches
        return any(matches(value) for value in self._values(subject))

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        values = self._values(subject)
        for value in values:
            pattern = self.globs.first_match(value)
            if pattern is not None:
                return f"{value!r} matches {pattern!r}"
        if not values:
            return f"there are none to match {_listed(self.globs.patterns)}"
        return f"{_listed(values)}, none matching {_listed(self.globs.patterns)}"


def subject_of(s: Subject) -> str:
    return s.identity.subject


def groups_of(s: Subject) -> Sequence[str]:
    return s.identity.groups


def actors_of(s: Subject) -> Sequence[str]:
    return s.identity.actor_chain


def actor_of(s: Subject) -> str:
    """The actor calling now: the chain's last actor, or the subject for a direct token."""
    return s.identity.actor


def issuer_of(s: Subject) -> str:
    return s.identity.issuer


DEPTH_OPERATORS: Final[dict[str, Callable[[int, int], bool]]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}
"""The comparisons ``identity.depth`` accepts."""


class DepthCheck:
    """identity.depth: how many exchanges separate the token from a root token,
    compared with a number (``==`` for a plain number)."""

    __slots__ = ("_test", "bound", "cost", "key", "operator")

    def __init__(self, operator: str, bound: int) -> None:
        self.key, self.operator, self.bound, self.cost = "identity.depth", operator, bound, 1
        self._test = DEPTH_OPERATORS[operator]

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return self._test(subject.identity.depth, self.bound)

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        depth = subject.identity.depth
        verb = "is" if self.holds(subject, c) else "is not"
        return f"depth {depth} {verb} {self.operator} {self.bound}"


def connection_of(s: Subject) -> str:
    return s.connection


def protocol_of(s: Subject) -> str:
    return s.protocol


class LabelsCheck:
    """labels: every label given must be present with exactly that value."""

    __slots__ = ("cost", "key", "labels")

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.key, self.labels, self.cost = "labels", tuple(labels.items()), 2

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        have = subject.labels
        return all(have.get(name) == value for name, value in self.labels)

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        for name, value in self.labels:
            got = subject.labels.get(name)
            if got != value:
                seen = "absent" if got is None else repr(got)
                return f"{name} is {seen}, not {value!r}"
        return ", ".join(f"{name} = {value!r}" for name, value in self.labels)


class KindsCheck:
    """kinds: the statement has at least one of the kinds."""

    __slots__ = ("cost", "key", "kinds")

    def __init__(self, kinds: Iterable[str]) -> None:
        self.key, self.kinds, self.cost = "kinds", frozenset(kinds), 0

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return not self.kinds.isdisjoint(c.kinds)

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        common = sorted(self.kinds & c.kinds)
        if common:
            return f"the statement is {_listed(common)}"
        return f"the statement is {_listed(sorted(c.kinds))}, none of {_listed(sorted(self.kinds))}"


class OnlyKindsCheck:
    """only_kinds: every kind of the statement is one of these (and it has one)."""

    __slots__ = ("cost", "key", "kinds")

    def __init__(self, kinds: Iterable[str]) -> None:
        self.key, self.kinds, self.cost = "only_kinds", frozenset(kinds), 0

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return bool(c.kinds) and c.kinds <= self.kinds

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        extra = sorted(c.kinds - self.kinds)
        if extra:
            return f"the statement is also {_listed(extra)}"
        return f"the statement is only {_listed(sorted(c.kinds))}"


TABLES_READ: Final = "tables_read"
TABLES_WRITTEN: Final = "tables_written"
TABLES: Final = "tables"
FUNCTIONS: Final = "functions"
_VERBS: Final = {
    TABLES_READ: ("reads", "table"),
    TABLES_WRITTEN: ("writes", "table"),
    TABLES: ("names", "table"),
    FUNCTIONS: ("calls", "function"),
}


class NamesCheck:
    """tables_read, tables_written, tables, functions: any name against any pattern."""

    __slots__ = ("_values", "_verb", "cost", "key", "names")

    def __init__(
        self,
        key: str,
        names: SqlNames,
        values: Callable[[SqlClassification], Iterable[str]],
    ) -> None:
        self.key, self.names, self._values, self.cost = key, names, values, 4
        self._verb = _VERBS.get(key, ("names", "table"))

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return self.names.any_match(self._values(c)) is not None

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        verb, noun = self._verb
        found = self.names.any_match(self._values(c))
        if found is not None:
            return f"{found[0]} matches {found[1]!r}"
        seen = sorted(set(self._values(c)))
        if not seen:
            return f"the statement {verb} no {noun}"
        return f"the statement {verb} {_listed(seen)}, none matching {_listed(self.names.patterns)}"


def tables_read(c: SqlClassification) -> Iterable[str]:
    return c.tables_read


def tables_written(c: SqlClassification) -> Iterable[str]:
    return c.tables_written


def tables_any(c: SqlClassification) -> Iterable[str]:
    return (*c.tables_read, *c.tables_written)


def functions(c: SqlClassification) -> Iterable[str]:
    return c.functions


class FlagCheck:
    """where_absent, multi_statement, opaque: a yes/no property of the statement."""

    __slots__ = ("_value", "cost", "expected", "key")

    def __init__(
        self, key: str, expected: bool, value: Callable[[SqlClassification], bool]
    ) -> None:
        self.key, self.expected, self._value, self.cost = key, expected, value, 1

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return self._value(c) is self.expected

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        return f"it is {str(self._value(c)).lower()}"


class HostGlobCheck:
    """command, program, paths, destination: what a host command names, against
    any-of globs. A SQL statement names none of these, so it never matches."""

    __slots__ = ("_values", "cost", "globs", "key")

    def __init__(
        self, key: str, globs: Globs, values: Callable[[HostClassification], Iterable[str]]
    ) -> None:
        self.key, self.globs, self._values, self.cost = key, globs, values, 3

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        if not isinstance(c, HostClassification):
            return False
        return any(self.globs.matches(value) for value in self._values(c))

    def describe(self, subject: Subject, c: SqlClassification) -> str:
        if not isinstance(c, HostClassification):
            return "a SQL statement has no " + self.key
        values = list(self._values(c))
        for value in values:
            pattern = self.globs.first_match(value)
            if pattern is not None:
                return f"{value!r} matches {pattern!r}"
        return f"{_listed(values)}, none matching {_listed(self.globs.patterns)}"


def command_line_of(c: HostClassification) -> Iterable[str]:
    return (c.command_line,) if c.command_line else ()


def program_of(c: HostClassification) -> Iterable[str]:
    return (c.program,) if c.program else ()


def paths_of(c: HostClassification) -> Iterable[str]:
    return c.paths


def destination_of(c: HostClassification) -> Iterable[str]:
    return (c.destination,) if c.destination else ()


def where_absent(c: SqlClassification) -> bool:
    return bool(c.where_absent)


def multi_statement(c: SqlClassification) -> bool:
    return c.statement_count > 1


def opaque(c: SqlClassification) -> bool:
    return bool(c.opaque)


class Match:
    """A rule's ``match``: it holds when every check holds (no checks: always)."""

    __slots__ = ("checks", "named_kinds", "names_unparseable", "tests")

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks: tuple[Check, ...] = tuple(checks)
        # Cheapest first: most rules are decided by their kinds alone.
        self.tests = tuple(check.holds for check in sorted(self.checks, key=lambda k: k.cost))
        #: Every kind the rule names in ``kinds`` or ``only_kinds``: only such a rule
        #: may allow unparseable text or a named-only host command kind.
        kind_checks = [c for c in self.checks if isinstance(c, KindsCheck | OnlyKindsCheck)]
        self.named_kinds: frozenset[str] = frozenset().union(*(c.kinds for c in kind_checks))
        self.names_unparseable = "unparseable" in self.named_kinds

    def holds(self, subject: Subject, c: SqlClassification) -> bool:
        return all(test(subject, c) for test in self.tests)

    def trace(self, subject: Subject, c: SqlClassification) -> list[tuple[str, bool, str]]:
        """Each key, whether it held, and why: in the order the keys were written."""
        return [
            (check.key, check.holds(subject, c), check.describe(subject, c))
            for check in self.checks
        ]
