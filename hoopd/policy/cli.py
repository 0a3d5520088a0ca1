"""``hoopd policy``: check a policy directory, run its test cases, explain a verdict.

Exit status: 0 when all is well, 1 when the policy has problems or a test case
fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hoopd.events import HOST_KINDS, HostCommand, SqlStatement
from hoopd.identity.base import Identity
from hoopd.policy.cases import host_event, load_cases, run_case, unknown_rules
from hoopd.policy.errors import PolicyError
from hoopd.policy.explain import explain
from hoopd.policy.loader import case_files, load_policy
from hoopd.policy.policy import Policy
from hoopd.policy.verdict import Subject
from hoopd.policy.yamlread import Problems
from hoopd.protocols.postgres.classify import classify


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hoopd policy check``, ``hoopd policy test`` and ``hoopd policy explain``."""
    policy = subparsers.add_parser(
        "policy",
        help="check, test and explain policy directories",
        description="Work with a policy directory (YAML rules; see docs/policy.md).",
    )
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    check = actions.add_parser(
        "check",
        help="validate a policy directory",
        description="Validate every policy file and test file in DIR. Prints a one-line"
        " summary, or every problem as file:line: problem and exits 1.",
    )
    check.add_argument("directory", type=Path, metavar="DIR")
    check.set_defaults(func=_check)

    test = actions.add_parser(
        "test",
        help="run the test cases (*.test.yaml) of a policy directory",
        description="Judge every case in DIR's *.test.yaml files with DIR's policy; print"
        " each failure and exit 1 if any case fails.",
    )
    test.add_argument("directory", type=Path, metavar="DIR")
    test.set_defaults(func=_test)

    exp = actions.add_parser(
        "explain",
        help="show the verdict on one statement and why",
        description="Judge one SQL text as the gateway would and show the verdict, the"
        " deciding rule and every rule that matched, with the keys that held.",
    )
    exp.add_argument("--policies", type=Path, required=True, metavar="DIR")
    exp.add_argument("--connection", required=True, metavar="NAME")
    exp.add_argument(
        "--label", action="append", default=[], dest="labels", metavar="KEY=VALUE",
        help="a label of the connection (repeatable)",
    )  # fmt: skip
    exp.add_argument("--identity", required=True, metavar="SUBJECT")
    exp.add_argument(
        "--group", action="append", default=[], dest="groups", metavar="G",
        help="a group of the identity (repeatable)",
    )  # fmt: skip
    exp.add_argument(
        "--actor", action="append", default=[], dest="actors", metavar="A",
        help="an actor of a delegated token, in hop order: the first delegate first, the"
        " actor calling now last (repeatable; the token's depth is how many are given)",
    )  # fmt: skip
    exp.add_argument(
        "--issuer", default="static", metavar="NAME",
        help="who issued the token: static, hoopd or an OIDC issuer's name (default static)",
    )  # fmt: skip
    exp.add_argument(
        "--protocol", help="the connection's protocol (default postgres, or ssh with --host)"
    )
    what = exp.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", metavar="TEXT", help="SQL text, classified as the gateway does")
    what.add_argument(
        "--host", metavar="KIND",
        help="a host command of this kind instead (exec, shell, sftp-read, forward, ...)",
    )  # fmt: skip
    exp.add_argument(
        "--command", metavar="TEXT",
        help="with --host: the command line (exec) or the operation as written",
    )  # fmt: skip
    exp.add_argument(
        "--path", action="append", default=[], dest="paths", metavar="PATH",
        help="with --host: a path the operation names (repeatable)",
    )  # fmt: skip
    exp.add_argument(
        "--destination", default="", metavar="HOST:PORT",
        help="with --host: where a forward goes, or where a remote forward listens",
    )  # fmt: skip
    exp.set_defaults(func=_explain)


def _check(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    problems: list[str] = []
    policy: Policy | None = None
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        problems += exc.problems
    case_problems = Problems()
    cases = load_cases(case_files(directory), case_problems) if directory.is_dir() else []
    problems += case_problems.lines
    if policy is not None:
        problems += unknown_rules(policy, cases)
    if problems or policy is None:
        for problem in problems:
            print(problem)
        print(f"{directory}: {_count(len(problems), 'problem')}")
        return 1
    actions = Counter(rule.action for rule in policy.rules)
    by_action = ", ".join(f"{actions[a]} {a}" for a in ("allow", "deny", "approve"))
    masks = len(policy.mask_rules())
    defaults = _count(len(policy.defaults), "defaults entry", "defaults entries")
    print(
        f"{directory}: ok: {_count(len(policy.rules) + masks, 'rule')}"
        f" ({by_action}, {masks} mask), {defaults},"
        f" {_count(len(cases), 'test case')} in {_count(len(policy.files), 'file')}"
    )
    return 0


def _test(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{directory}: the policy has problems; no case was run")
        return 1
    problems = Problems()
    paths = case_files(directory)
    cases = load_cases(paths, problems)
    problem_lines = problems.lines + unknown_rules(policy, cases)
    if problem_lines:
        for problem in problem_lines:
            print(problem)
        print(f"{directory}: the test files have problems; no case was run")
        return 1
    if not cases:
        print(f"{directory}: no test cases (write them in *.test.yaml files; see docs/policy.md)")
        return 1
    failed = 0
    for case in cases:
        outcome = run_case(policy, case)
        if outcome.failure is None:
            continue
        failed += 1
        verdict = outcome.verdict
        by = f"rule {verdict.rule!r}" if verdict.rule else "no rule (a default)"
        print(f"FAIL {case.where}: {case.name}")
        if case.host is not None:
            print(f"    host:     {case.host.kind} {case.host.text}")
        else:
            print(f"    sql:      {case.sql}")
        print(f"    problem:  {outcome.failure}")
        print(f"    verdict:  {verdict.action} by {by}")
        if verdict.message:
            print(f"    message:  {verdict.message}")
        if verdict.matched:
            print(f"    matched:  {', '.join(verdict.matched)}")
    passed = len(cases) - failed
    print(f"{directory}: {_count(len(cases), 'case')}, {passed} passed, {failed} failed")
    return 1 if failed else 0


def _explain(args: argparse.Namespace) -> int:
    labels: dict[str, str] = {}
    for item in args.labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(
                f"hoopd policy explain: --label must be KEY=VALUE (got {item!r})", file=sys.stderr
            )
            return 2
        labels[key] = value
    try:
        policy = load_policy(args.policies)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    identity = Identity(
        args.identity,
        tuple(args.groups),
        "policy-explain",
        tuple(args.actors),
        issuer=args.issuer,
    )
    statement: SqlStatement | HostCommand
    if args.host is not None:
        if args.host not in HOST_KINDS:
            known = ", ".join(sorted(HOST_KINDS))
            print(
                f"hoopd policy explain: unknown host kind {args.host!r} ({known})", file=sys.stderr
            )
            return 2
        statement = host_event(args.host, args.command, tuple(args.paths), args.destination)
    else:
        statement = SqlStatement(args.sql, classify(args.sql))
    protocol = args.protocol or ("ssh" if args.host is not None else "postgres")
    subject = Subject(identity, args.connection, labels, protocol)
    for line in explain(policy, subject, statement):
        print(line)
    return 0


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
