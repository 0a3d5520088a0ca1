"""The loaded policy and its one hot-path method, :meth:`Policy.judge`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Literal

from hoopd.events import NAMED_ONLY_KINDS, HostCommand, SqlClassification, SqlStatement
from hoopd.policy.rules import DefaultsEntry, MaskRule, Rule
from hoopd.policy.verdict import Subject, Verdict

_VERDICT_CACHE_ENTRIES: Final = 4096
_DENY, _APPROVE, _ALLOW = 0, 1, 2
_ACTION_CODES: Final = {"deny": _DENY, "approve": _APPROVE, "allow": _ALLOW}

EVALUATION_FAILED: Final = "denied by policy: the policy could not be evaluated"
"""How the message of a verdict given because evaluation failed begins."""

_Test = Callable[[Subject, SqlClassification], bool]

_NAMED_ONLY: Final = NAMED_ONLY_KINDS | {"unparseable"}
"""Kinds that only a rule naming them may allow, and no default."""


class Policy:
    """A validated policy directory, compiled for evaluation.

    Immutable once built; its only mutable state is bounded memo tables whose
    plain dict operations are atomic, so one instance may be shared by every
    session and thread. Build it with :func:`hoopd.policy.load_policy`.
    """

    __slots__ = ("_defaults", "_files", "_masks", "_plan", "_rules", "_verdicts")

    def __init__(
        self,
        rules: Sequence[Rule | MaskRule],
        defaults: Sequence[DefaultsEntry] = (),
        files: Sequence[Path] = (),
    ) -> None:
        self._rules = tuple(rule for rule in rules if isinstance(rule, Rule))
        self._masks = tuple(rule for rule in rules if isinstance(rule, MaskRule))
        self._defaults = tuple(defaults)
        self._files = tuple(files)
        # What judge needs of each rule, unpacked once so the loop does no lookups.
        self._plan: tuple[tuple[tuple[_Test, ...], int, frozenset[str]], ...] = tuple(
            (rule.match.tests, _ACTION_CODES[rule.action], rule.match.named_kinds & _NAMED_ONLY)
            for rule in self._rules
        )
        self._verdicts: dict[tuple[object, ...], Verdict] = {}

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The allow, deny and approve rules, in policy order."""
        return self._rules

    @property
    def defaults(self) -> tuple[DefaultsEntry, ...]:
        return self._defaults

    @property
    def files(self) -> tuple[Path, ...]:
        """The policy files read, in the order their rules are taken."""
        return self._files

    def mask_rules(self) -> tuple[MaskRule, ...]:
        """The mask rules, parsed and validated, in policy order. ``judge`` ignores them."""
        return self._masks

    def judge(self, subject: Subject, command: SqlStatement | HostCommand) -> Verdict:
        """Decide on one command. Never raises.

        Among the rules whose ``match`` holds, the first deny decides; failing that
        the first approve; failing that the first allow. When none holds, the
        connection's default decides (``unmatched``), and deny when no defaults
        entry selects the connection. Text whose kinds include ``unparseable`` is
        denied unless an allow or approve rule that names the ``unparseable`` kind
        matches it and no defaults entry for the connection says
        ``unparseable: deny``. The same holds for the host command kinds
        ``remote-forward``, ``agent-forward`` and ``x11``
        (:data:`~hoopd.events.NAMED_ONLY_KINDS`): only an allow or approve rule
        that names the kind lets one through; the default never does. Any internal
        failure is a deny.
        """
        try:
            return self._judge(subject, command.classification)
        except Exception as exc:  # fail closed: a bug must not let a command through
            return Verdict(
                "deny",
                None,
                f"{EVALUATION_FAILED} ({type(exc).__name__});"
                " the gateway refuses what it cannot check",
            )

    def unmatched_for(
        self, subject: Subject
    ) -> tuple[Literal["allow", "deny"], list[DefaultsEntry]]:
        """What happens to a statement no rule matches, and the entries that said so.

        Of the defaults entries that select the subject's connection and set
        ``unmatched``, those with a selector (``connection`` or ``labels``) take
        precedence over those without; among the ones that count, deny wins. When
        no entry sets it, deny.
        """
        entries = [e for e in self._defaults if e.unmatched is not None and e.selects(subject)]
        specific = [e for e in entries if e.has_selector]
        counted = specific or entries
        if counted and all(e.unmatched == "allow" for e in counted):
            return "allow", counted
        return "deny", [e for e in counted if e.unmatched == "deny"]

    def unparseable_denied(self, subject: Subject) -> bool:
        """Whether a defaults entry for this connection says ``unparseable: deny``."""
        return any(entry.unparseable_deny and entry.selects(subject) for entry in self._defaults)

    def _judge(self, subject: Subject, c: SqlClassification) -> Verdict:
        guarded = _NAMED_ONLY.intersection(c.kinds)
        matched: list[int] = []
        first = [-1, -1, -1]  # the first matching rule of each action
        for index, (tests, action, named) in enumerate(self._plan):
            for test in tests:
                if not test(subject, c):
                    break
            else:
                matched.append(index)
                # Only a rule that names every guarded kind may let the command through.
                if first[action] < 0 and (action == _DENY or not guarded or guarded <= named):
                    first[action] = index
        deciding = next((index for index in first if index >= 0), -1)
        if guarded and first[_DENY] < 0:
            if "unparseable" in guarded:
                if deciding < 0 or self.unparseable_denied(subject):
                    return self._unparseable(c, matched)
            elif deciding < 0:
                return self._not_named(guarded, matched)
        if deciding >= 0:
            return self._rule_verdict(deciding, tuple(matched))
        return self._default_verdict(subject, tuple(matched))

    def _rule_verdict(self, index: int, matched: tuple[int, ...]) -> Verdict:
        key = (index, matched)
        verdict = self._verdicts.get(key)
        if verdict is None:
            rule = self._rules[index]
            verdict = Verdict(
                rule.action,
                rule.name,
                rule.message,
                rule.approvers,
                rule.min_approvals,
                rule.deadline_seconds,
                self._names(matched),
            )
            self._remember(key, verdict)
        return verdict

    def _default_verdict(self, subject: Subject, matched: tuple[int, ...]) -> Verdict:
        action, _ = self.unmatched_for(subject)
        key = (action, subject.connection, matched)
        verdict = self._verdicts.get(key)
        if verdict is None:
            message = (
                None
                if action == "allow"
                else f"denied by policy: no rule allows this statement on connection"
                f" {subject.connection!r}"
            )
            verdict = Verdict(action, None, message, matched=self._names(matched))
            self._remember(key, verdict)
        return verdict

    def _unparseable(self, c: SqlClassification, matched: list[int]) -> Verdict:
        reason = f" ({c.parse_error})" if c.parse_error else ""
        return Verdict(
            "deny",
            None,
            f"denied by policy: the statement could not be parsed{reason}, and the gateway"
            " refuses what it cannot check",
            matched=self._names(tuple(matched)),
        )

    def _not_named(self, kinds: frozenset[str], matched: list[int]) -> Verdict:
        kind = min(kinds)
        return Verdict(
            "deny",
            None,
            f"denied by policy: {kind} is refused unless a rule allows it by name"
            f" (kinds: [{kind}])",
            matched=self._names(tuple(matched)),
        )

    def _names(self, matched: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(self._rules[index].name for index in matched)

    def _remember(self, key: tuple[object, ...], verdict: Verdict) -> None:
        if len(self._verdicts) >= _VERDICT_CACHE_ENTRIES:
            self._verdicts.clear()
        self._verdicts[key] = verdict
