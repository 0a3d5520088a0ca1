"""The parsed, validated form of a policy: rules, mask rules and defaults entries.

Everything here is immutable once built; :mod:`hoopd.policy.parse` builds it
from YAML and :class:`hoopd.policy.Policy` evaluates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from hoopd.masking import DETECTORS, REGEX_PREFIX
from hoopd.masking import MASK_STYLES as MASK_STYLES
from hoopd.policy.checks import Match
from hoopd.policy.names import Globs
from hoopd.policy.verdict import Subject

RuleAction = Literal["allow", "deny", "approve", "mask"]
RULE_ACTIONS: Final = ("allow", "deny", "approve", "mask")

# The masking stage's own vocabulary, so that a policy that passes `hoopd policy
# check` is one the masking stage accepts (docs/masking.md describes each name).
MASK_DETECTORS: Final = tuple(DETECTORS)
"""Built-in content detectors; ``regex:<pattern>`` names a detector of one's own."""

REGEX_DETECTOR_PREFIX: Final = REGEX_PREFIX


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``allow``, ``deny`` or ``approve`` rule; ``source`` is ``file:line``."""

    name: str
    source: str
    action: Literal["allow", "deny", "approve"]
    match: Match = field(compare=False)
    message: str | None = None
    approvers: tuple[str, ...] = ()
    min_approvals: int = 1
    deadline_seconds: float | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class MaskRule:
    """A ``mask`` rule: which result values to mask, for which subjects and statements.

    ``columns`` are ``column``, ``table.column`` or ``schema.table.column`` globs,
    compared case-insensitively; ``detectors`` name content detectors. The fields
    are those of :class:`hoopd.masking.MaskRule`. Parsed and validated now; the
    masking stage applies them, so :meth:`hoopd.policy.Policy.judge` never looks at
    these.
    """

    name: str
    source: str
    match: Match = field(compare=False)
    columns: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    style: str = "redact"
    keep_last: int = 4
    description: str | None = None


@dataclass(frozen=True, slots=True)
class DefaultsEntry:
    """One ``defaults`` entry: for the connections its selector picks, what happens
    to statements no rule matches (``unmatched``) and whether unparseable text is
    refused even when a rule would allow it (``unparseable_deny``).

    A selector with neither ``connection`` nor ``labels`` picks every connection;
    entries with a selector take precedence over those without
    (:meth:`hoopd.policy.Policy.unmatched_for`).
    """

    source: str
    connection: Globs | None = field(compare=False)
    labels: Mapping[str, str] = field(hash=False)
    unmatched: Literal["allow", "deny"] | None
    unparseable_deny: bool

    @property
    def has_selector(self) -> bool:
        return self.connection is not None or bool(self.labels)

    def selects(self, subject: Subject) -> bool:
        if self.connection is not None and not self.connection.matches(subject.connection):
            return False
        have = subject.labels
        return all(have.get(name) == value for name, value in self.labels.items())
