"""``hoopd policy explain``: a verdict, and every rule's part in it, as text."""

from __future__ import annotations

from hoopd.events import (
    NAMED_ONLY_KINDS,
    HostClassification,
    HostCommand,
    SqlClassification,
    SqlStatement,
)
from hoopd.identity.base import Identity
from hoopd.policy.policy import EVALUATION_FAILED, Policy
from hoopd.policy.rules import MaskRule, Rule
from hoopd.policy.verdict import Subject, Verdict


def explain(policy: Policy, subject: Subject, statement: SqlStatement | HostCommand) -> list[str]:
    """Lines describing the verdict, the deciding rule, the statement as classified,
    the caller (its delegation chain in hop order, depth and issuer), each rule that
    matched with the keys that held, each that did not with the keys that failed, and
    the connection's default when it applied."""
    c = statement.classification
    verdict = policy.judge(subject, statement)
    lines = [f"verdict: {verdict.action}"]
    lines += _decision(policy, subject, verdict, c)
    lines.append(f"statement: {_classification(c)}")
    lines.append(f"caller: {caller(subject.identity)}")
    matched = [rule for rule in policy.rules if rule.name in verdict.matched]
    others = [rule for rule in policy.rules if rule.name not in verdict.matched]
    lines.append(f"matched rules ({len(matched)})" + (":" if matched else ""))
    for rule in matched:
        lines += _rule_lines(rule, subject, c, held=True)
        if "unparseable" in c.kinds and rule.action != "deny" and not rule.match.names_unparseable:
            lines.append("      (does not name the unparseable kind, so it cannot allow this text)")
        for kind in sorted(NAMED_ONLY_KINDS & c.kinds - rule.match.named_kinds):
            if rule.action != "deny":
                lines.append(f"      (does not name the {kind} kind, so it cannot allow it)")
    lines.append(f"rules that did not match ({len(others)})" + (":" if others else ""))
    for rule in others:
        lines += _rule_lines(rule, subject, c, held=False)
    masks = [mask for mask in policy.mask_rules() if mask.match.holds(subject, c)]
    if masks:
        lines.append("mask rules that hold (they mask results; they do not change the verdict):")
        lines += [f"  {mask.name} ({mask.source}): {_mask_summary(mask)}" for mask in masks]
    return lines


def _decision(
    policy: Policy, subject: Subject, verdict: Verdict, c: SqlClassification
) -> list[str]:
    lines: list[str] = []
    if verdict.rule is not None:
        rule = next(r for r in policy.rules if r.name == verdict.rule)
        lines.append(f"deciding rule: {rule.name} ({rule.source})")
    elif "unparseable" in c.kinds:
        strict = policy.unparseable_denied(subject)
        why = "a defaults entry says unparseable: deny" if strict else "no rule allows it"
        lines.append(f"deciding rule: none (the text is unparseable and {why})")
    elif verdict.message is not None and verdict.message.startswith(EVALUATION_FAILED):
        lines.append("deciding rule: none (the policy could not be evaluated)")
    elif NAMED_ONLY_KINDS & c.kinds:
        kind = min(NAMED_ONLY_KINDS & c.kinds)
        lines.append(f"deciding rule: none ({kind} is refused unless a rule allows it by name)")
    else:
        action, entries = policy.unmatched_for(subject)
        said = [f"unmatched: {e.unmatched} at {e.source}" for e in entries if e.unmatched]
        origin = "; ".join(said) or "no defaults entry sets unmatched for it"
        lines.append(
            f"deciding rule: none; connection {subject.connection!r} defaults to {action}"
            f" ({origin})"
        )
    if verdict.message is not None:
        lines.append(f"message: {verdict.message}")
    if verdict.action == "approve":
        deadline = f", deadline {verdict.deadline_seconds:g}s" if verdict.deadline_seconds else ""
        lines.append(
            f"approval: {verdict.min_approvals} of groups [{', '.join(verdict.approvers)}]"
            f"{deadline}; the requester cannot approve their own statement"
        )
    return lines


def _rule_lines(rule: Rule, subject: Subject, c: SqlClassification, held: bool) -> list[str]:
    lines = [f"  {rule.name} ({rule.action}, {rule.source})"]
    trace = rule.match.trace(subject, c)
    if not trace:
        lines.append("      (no match keys: applies to every statement)")
    for key, ok, why in trace:
        # For a rule that did not match, the keys that failed are the interesting ones.
        if held or not ok:
            lines.append(f"      {key}: {why}" + ("" if ok else "  [does not hold]"))
    return lines


def caller(identity: Identity) -> str:
    """``alice > ci-job > sub-agent (groups dev), depth 2, issuer hoopd``: the root
    subject first, then each actor in hop order, the last being the one calling now."""
    text = " > ".join((identity.subject, *identity.actor_chain))
    if identity.groups:
        text += f" (groups {', '.join(identity.groups)})"
    return f"{text}, depth {identity.depth}, issuer {identity.issuer}"


def _classification(c: SqlClassification) -> str:
    parts = [f"kinds [{', '.join(sorted(c.kinds))}]"]
    if c.tables_read:
        parts.append(f"reads [{', '.join(sorted(c.tables_read))}]")
    if c.tables_written:
        parts.append(f"writes [{', '.join(sorted(c.tables_written))}]")
    if c.functions:
        parts.append(f"calls [{', '.join(sorted(c.functions))}]")
    if c.where_absent:
        parts.append("where_absent")
    if c.opaque:
        parts.append("opaque")
    if c.statement_count > 1:
        parts.append(f"{c.statement_count} statements")
    if c.parse_error:
        parts.append(f"parse error: {c.parse_error}")
    if isinstance(c, HostClassification):
        if c.program:
            parts.append(f"program {c.program}")
        if c.command_line and c.command_line not in c.kinds:
            parts.append(f"command {c.command_line!r}")
        if c.paths:
            parts.append(f"paths [{', '.join(sorted(c.paths))}]")
        if c.destination:
            parts.append(f"destination {c.destination}")
    return ", ".join(parts)


def _mask_summary(mask: MaskRule) -> str:
    parts = []
    if mask.columns:
        parts.append(f"columns [{', '.join(mask.columns)}]")
    if mask.detectors:
        parts.append(f"detectors [{', '.join(mask.detectors)}]")
    style = f"keep-last {mask.keep_last}" if mask.style == "keep-last" else mask.style
    parts.append(f"style {style}")
    return ", ".join(parts)
