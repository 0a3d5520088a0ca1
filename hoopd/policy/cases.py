"""Test cases kept next to the rules (``*.test.yaml``), and running them.

A case names who sends a command where, the command (SQL, or a host command of
an SSH session), and the verdict expected; SQL is classified exactly as the
gateway classifies it and a host command is built as the SSH engine builds it,
so a passing case says what the gateway would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from yaml.nodes import Node, SequenceNode

from hoopd.events import HOST_KINDS, HostCommand, SqlStatement
from hoopd.identity.base import Identity
from hoopd.policy.policy import Policy
from hoopd.policy.verdict import Subject, Verdict
from hoopd.policy.yamlread import NULL, Problems, Reader, compose_file
from hoopd.protocols.postgres.classify import classify
from hoopd.protocols.ssh.commands import host_command

CASE_KEYS: Final = (
    "name", "identity", "connection", "labels", "protocol", "sql", "host", "expect", "rule",
)  # fmt: skip
HOST_KEYS: Final = ("kind", "command", "destination", "paths")
CASE_IDENTITY_KEYS: Final = ("subject", "groups", "actor_chain", "issuer")
_IDENTITY_HINTS: Final = {
    "depth": "the depth is the length of actor_chain: list the actors, first delegate first",
    "actor": "the actor calling now is the last of actor_chain",
}
DEFAULT_ISSUER: Final = "static"
EXPECTATIONS: Final = ("allow", "deny", "approve")
DEFAULT_SUBJECT: Final = "tester"
DEFAULT_CONNECTION: Final = "test"
DEFAULT_PROTOCOL: Final = "postgres"
HOST_PROTOCOL: Final = "ssh"


@dataclass(frozen=True, slots=True)
class Case:
    """One expectation. ``rule`` is checked only when ``check_rule`` is set; then
    ``None`` means the verdict must come from no rule (a default)."""

    name: str
    where: str
    subject: Subject
    sql: str
    expect: str
    rule: str | None
    check_rule: bool
    #: The host command judged instead of ``sql`` (which is then empty).
    host: HostCommand | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    verdict: Verdict
    failure: str | None
    """What differed from the expectation; ``None`` when the case passed."""


def load_cases(paths: list[Path], problems: Problems) -> list[Case]:
    """Every case in ``paths``, in order; problems are recorded with file and line."""
    cases: list[Case] = []
    for path in paths:
        reader = Reader(str(path), problems)
        known_problems = len(problems.lines)
        root = compose_file(path, problems)
        if root is None:
            if len(problems.lines) == known_problems:
                problems.add(f"{path}:1", "empty file (a test file holds cases:)")
            continue
        fields = reader.fields(root, "test file", ("cases",))
        if fields is None:
            continue
        node = fields.get("cases")
        if node is None:
            reader.problem(root, "a test file must have cases:")
            continue
        if not isinstance(node, SequenceNode):
            reader.problem(node, "cases must be a list (each item starting with '- ')")
            continue
        for index, item in enumerate(node.value):
            case = _case(reader, item, index)
            if case is not None:
                cases.append(case)
    return cases


def _case(reader: Reader, node: Node, index: int) -> Case | None:
    what = f"cases[{index}]"
    fields = reader.fields(node, what, CASE_KEYS)
    if fields is None:
        return None
    ok = True

    def text(key: str, default: str | None) -> str | None:
        nonlocal ok
        value = fields.get(key)
        if value is None:
            if default is None:
                reader.problem(fields.node, f"{what}: missing {key}")
                ok = False
            return default
        read = reader.text(value, f"{what}: {key}")
        ok = ok and read is not None
        return read

    host: HostCommand | None = None
    if (host_node := fields.get("host")) is not None:
        host = _host_command(reader, host_node, f"{what}: host")
        ok = ok and host is not None
        if fields.get("sql") is not None:
            reader.problem(fields.key_node("host"), f"{what}: give sql or host, not both")
            ok = False
    sql = text("sql", "" if host_node is not None else None)
    expect = text("expect", None)
    if expect is not None and expect not in EXPECTATIONS:
        reader.problem(
            fields.key_node("expect"),
            f"{what}: expect must be allow, deny or approve (got {expect!r})",
        )
        ok = False
    name = text("name", host.text if host is not None else sql or "")
    connection = text("connection", DEFAULT_CONNECTION)
    protocol = text("protocol", HOST_PROTOCOL if host_node is not None else DEFAULT_PROTOCOL)
    labels: dict[str, str] = {}
    if (label_node := fields.get("labels")) is not None:
        read_labels = reader.text_map(label_node, f"{what}: labels")
        ok = ok and read_labels is not None
        labels = read_labels or {}
    identity = _identity(reader, fields.get("identity"), f"{what}: identity")
    ok = ok and identity is not None
    rule: str | None = None
    rule_node = fields.get("rule")
    if rule_node is not None and rule_node.tag != NULL:
        rule = reader.text(rule_node, f"{what}: rule")
        ok = ok and rule is not None
    if not ok or identity is None:
        return None
    assert sql is not None and expect is not None and connection is not None
    subject = Subject(identity, connection, labels, protocol or DEFAULT_PROTOCOL)
    return Case(
        name or sql, reader.where(node), subject, sql, expect, rule, rule_node is not None, host
    )


def _host_command(reader: Reader, node: Node, what: str) -> HostCommand | None:
    """``{kind, command, destination, paths}`` as the SSH engine would build it: an
    ``exec``'s argv split from ``command`` as a POSIX shell would; ``command``
    defaults to the kind."""
    fields = reader.fields(node, what, HOST_KEYS)
    if fields is None:
        return None
    texts: dict[str, str] = {}
    for key in ("kind", "command", "destination"):
        if (value := fields.get(key)) is not None:
            read = reader.text(value, f"{what}.{key}")
            if read is None:
                return None
            texts[key] = read
    kind = texts.get("kind")
    if kind is None:
        reader.problem(fields.node, f"{what}: missing kind")
        return None
    if kind not in HOST_KINDS:
        known = ", ".join(sorted(HOST_KINDS))
        reader.problem(fields.key_node("kind"), f"{what}: unknown host kind {kind!r} ({known})")
        return None
    paths: tuple[str, ...] = ()
    if (path_node := fields.get("paths")) is not None:
        read_paths = reader.texts(path_node, f"{what}.paths")
        if read_paths is None:
            return None
        paths = tuple(value for value, _ in read_paths)
    return host_event(kind, texts.get("command"), paths, texts.get("destination", ""))


def host_event(
    kind: str, command: str | None, paths: tuple[str, ...] = (), destination: str = ""
) -> HostCommand:
    """A host command of ``kind`` as the SSH engine builds it: an ``exec``'s argv split
    from ``command`` as a POSIX shell would; ``command`` defaults to the kind."""
    argv = host_command(command or "", None).argv if kind == "exec" else ()
    return HostCommand(kind, command or kind, argv, paths, destination)


def _identity(reader: Reader, node: Node | None, what: str) -> Identity | None:
    if node is None:
        return Identity(DEFAULT_SUBJECT, (), "policy-test")
    fields = reader.fields(node, what, CASE_IDENTITY_KEYS, _IDENTITY_HINTS)
    if fields is None:
        return None
    ok = True
    texts = {"subject": DEFAULT_SUBJECT, "issuer": DEFAULT_ISSUER}
    for key in texts:
        if (value := fields.get(key)) is not None:
            read = reader.text(value, f"{what}.{key}")
            ok = ok and read is not None
            texts[key] = read or texts[key]
    lists: dict[str, tuple[str, ...]] = {"groups": (), "actor_chain": ()}
    for key in lists:
        if (value := fields.get(key)) is not None:
            values = reader.texts(value, f"{what}.{key}")
            ok = ok and values is not None
            lists[key] = tuple(v for v, _ in values or ())
    if not ok:
        return None
    return Identity(
        texts["subject"],
        lists["groups"],
        "policy-test",
        lists["actor_chain"],
        issuer=texts["issuer"],
    )


def run_case(policy: Policy, case: Case) -> Outcome:
    """Judge the case's command and compare the verdict with the expectation."""
    command = case.host if case.host is not None else SqlStatement(case.sql, classify(case.sql))
    verdict = policy.judge(case.subject, command)
    differences = []
    if verdict.action != case.expect:
        differences.append(f"expected {case.expect}, got {verdict.action}")
    if case.check_rule and verdict.rule != case.rule:
        differences.append(f"expected rule {_rule_name(case.rule)}, got {_rule_name(verdict.rule)}")
    return Outcome(case, verdict, "; ".join(differences) or None)


def unknown_rules(policy: Policy, cases: list[Case]) -> list[str]:
    """Problems for cases that expect a rule the policy does not define."""
    names = {rule.name for rule in policy.rules}
    return [
        f"{case.where}: expects rule {case.rule!r}, which no allow, deny or approve rule is named"
        for case in cases
        if case.check_rule and case.rule is not None and case.rule not in names
    ]


def _rule_name(name: str | None) -> str:
    return "(none: a default)" if name is None else repr(name)
