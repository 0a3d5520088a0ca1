"""``hoopd policy check|test|explain``: exit statuses and what a user reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.test_policy_support import REPO, run_cli, write

RULES = """
defaults:
  - unmatched: allow
rules:
  - name: no-drop
    match: {kinds: [drop]}
    action: deny
    message: DROP is not allowed here
  - name: truncate-needs-approval
    match: {kinds: [truncate], connection: "prod*"}
    action: approve
    approvers: [dba]
    deadline: 10m
  - name: emails
    action: mask
    columns: [email]
"""


def test_check_prints_a_summary_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    write(tmp_path, "rules.test.yaml", "cases:\n  - {sql: DROP TABLE t, expect: deny}\n")
    done = run_cli(["policy", "check", str(tmp_path)])
    assert done.status == 0
    assert done.out == (
        f"{tmp_path}: ok: 3 rules (0 allow, 1 deny, 1 approve, 1 mask), 1 defaults entry,"
        " 1 test case in 1 file\n"
    )


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: no-drop
            match: {kinds: [drops]}
            action: deny
        """,
    )
    cases = write(tmp_path, "x.test.yaml", "cases:\n  - {sql: SELECT 1, expect: maybe}\n")
    done = run_cli(["policy", "check", str(tmp_path)])
    assert done.status == 1
    lines = done.out.splitlines()
    assert lines[0].startswith(f"{rules}:3: rule 'no-drop': match.kinds: unknown kind 'drops'")
    assert lines[1] == f"{rules}:2: rule 'no-drop': missing message (the text the user is shown)"
    assert lines[2] == (f"{cases}:2: cases[0]: expect must be allow, deny or approve (got 'maybe')")
    assert lines[3] == f"{tmp_path}: 3 problems"


def test_check_reports_cases_naming_a_rule_that_does_not_exist(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    cases = write(
        tmp_path, "a.test.yaml", "cases:\n  - {sql: DROP TABLE t, expect: deny, rule: no-drops}\n"
    )
    done = run_cli(["policy", "check", str(tmp_path)])
    assert done.status == 1
    assert done.out.splitlines()[0] == (
        f"{cases}:2: expects rule 'no-drops', which no allow, deny or approve rule is named"
    )


def test_test_passes_quietly_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - {sql: DROP TABLE t, expect: deny, rule: no-drop}
          - {sql: TRUNCATE t, connection: prod-1, expect: approve}
          - {sql: TRUNCATE t, connection: dev, expect: allow, rule: null}
          - {sql: SELEC 1, expect: deny}
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 0
    assert done.out == f"{tmp_path}: 4 cases, 4 passed, 0 failed\n"


def test_test_prints_each_failure_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    cases = write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - name: drop is allowed (wrongly expected)
            sql: DROP TABLE t
            expect: allow
          - sql: SELECT 1
            expect: allow
            rule: no-drop
          - sql: SELECT 2
            expect: allow
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1
    assert done.out.splitlines() == [
        f"FAIL {cases}:2: drop is allowed (wrongly expected)",
        "    sql:      DROP TABLE t",
        "    problem:  expected allow, got deny",
        "    verdict:  deny by rule 'no-drop'",
        "    message:  DROP is not allowed here",
        "    matched:  no-drop",
        f"FAIL {cases}:5: SELECT 1",
        "    sql:      SELECT 1",
        "    problem:  expected rule 'no-drop', got (none: a default)",
        "    verdict:  allow by no rule (a default)",
        f"{tmp_path}: 3 cases, 1 passed, 2 failed",
    ]


def test_test_without_cases_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1
    assert "no test cases" in done.out


def test_test_does_not_run_cases_against_a_broken_policy(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", "rules:\n  - {name: r, action: allow, extra: 1}\n")
    write(tmp_path, "rules.test.yaml", "cases:\n  - {sql: SELECT 1, expect: allow}\n")
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1
    assert done.out.splitlines() == [
        f"{rules}:2: rules[0]: unknown key 'extra' (known keys: action, approvers, columns,"
        " deadline, description, detectors, keep_last, match, message, min_approvals, name,"
        " style)",
        f"{tmp_path}: the policy has problems; no case was run",
    ]


def explain(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    write(tmp_path, "rules.yaml", RULES)
    done = run_cli(["policy", "explain", "--policies", str(tmp_path), *args])
    return done.status, done.out.splitlines()


def test_explain_shows_the_deciding_rule_and_why_each_rule_matched(tmp_path: Path) -> None:
    status, lines = explain(
        tmp_path,
        "--connection", "prod-eu", "--identity", "alice", "--group", "dev",
        "--sql", "TRUNCATE t; DROP TABLE u",
    )  # fmt: skip
    rules = tmp_path / "rules.yaml"
    assert status == 0
    assert lines == [
        "verdict: deny",
        f"deciding rule: no-drop ({rules}:4)",
        "message: DROP is not allowed here",
        "statement: kinds [drop, truncate], writes [t, u], 2 statements",
        "caller: alice (groups dev), depth 0, issuer static",
        "matched rules (2):",
        f"  no-drop (deny, {rules}:4)",
        "      kinds: the statement is [drop]",
        f"  truncate-needs-approval (approve, {rules}:8)",
        "      kinds: the statement is [truncate]",
        "      connection: 'prod-eu' matches 'prod*'",
        "rules that did not match (0)",
        "mask rules that hold (they mask results; they do not change the verdict):",
        f"  emails ({rules}:13): columns [email], style redact",
    ]


def test_explain_names_the_default_and_the_rules_that_failed(tmp_path: Path) -> None:
    status, lines = explain(
        tmp_path,
        "--connection", "dev", "--label", "env=dev", "--identity", "bob",
        "--sql", "TRUNCATE t",
    )  # fmt: skip
    rules = tmp_path / "rules.yaml"
    assert status == 0
    assert lines == [
        "verdict: allow",
        f"deciding rule: none; connection 'dev' defaults to allow (unmatched: allow at {rules}:2)",
        "statement: kinds [truncate], writes [t]",
        "caller: bob, depth 0, issuer static",
        "matched rules (0)",
        "rules that did not match (2):",
        f"  no-drop (deny, {rules}:4)",
        "      kinds: the statement is [truncate], none of [drop]  [does not hold]",
        f"  truncate-needs-approval (approve, {rules}:8)",
        "      connection: 'dev' matches none of [prod*]  [does not hold]",
        "mask rules that hold (they mask results; they do not change the verdict):",
        f"  emails ({rules}:13): columns [email], style redact",
    ]


def test_explain_an_approval_and_unparseable_text(tmp_path: Path) -> None:
    status, lines = explain(
        tmp_path, "--connection", "prod", "--identity", "carol", "--sql", "TRUNCATE t"
    )
    assert status == 0
    assert lines[0] == "verdict: approve"
    assert (
        "approval: 1 of groups [dba], deadline 600s;"
        " the requester cannot approve their own statement"
    ) in lines
    status, lines = explain(
        tmp_path, "--connection", "prod", "--identity", "carol", "--sql", "SELEC 1"
    )
    assert status == 0
    assert lines[:2] == [
        "verdict: deny",
        "deciding rule: none (the text is unparseable and no rule allows it)",
    ]


def test_explain_refuses_a_malformed_label(tmp_path: Path) -> None:
    status, _ = explain(
        tmp_path, "--connection", "c", "--identity", "i", "--label", "novalue", "--sql", "SELECT 1"
    )
    assert status == 2


def test_policy_is_a_hoopd_subcommand(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    done = subprocess.run(
        [sys.executable, "-m", "hoopd", "policy", "check", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{tmp_path}: ok: 3 rules")
    missing = run_cli(["policy", "check"])
    assert missing.status == 2


HOST_RULES = """
defaults:
  - unmatched: allow
rules:
  - name: no-shadow
    match: {kinds: [exec], program: [cat], command: ["* /etc/shadow*"]}
    action: deny
    message: /etc/shadow stays on the host
  - name: ops-forward-to-the-database
    match: {kinds: [forward], destination: ["db.internal:5432"], identity: {groups: [ops]}}
    action: allow
"""


def test_explain_judges_a_host_command_as_the_ssh_engine_builds_it(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", HOST_RULES)
    shadow = run_cli(
        ["policy", "explain", "--policies", str(tmp_path), "--connection", "web",
         "--identity", "alice", "--host", "exec", "--command", "cat  /etc/shadow"]
    )  # fmt: skip
    assert shadow.status == 0, shadow.err
    assert shadow.out.splitlines()[:4] == [
        "verdict: deny",
        f"deciding rule: no-shadow ({tmp_path / 'rules.yaml'}:4)",
        "message: /etc/shadow stays on the host",
        "statement: kinds [exec], program cat, command 'cat  /etc/shadow'",
    ]
    forward = run_cli(
        ["policy", "explain", "--policies", str(tmp_path), "--connection", "web",
         "--identity", "bob", "--group", "ops", "--host", "forward",
         "--destination", "db.internal:5432"]
    )  # fmt: skip
    assert forward.out.splitlines()[:2] == [
        "verdict: allow",
        f"deciding rule: ops-forward-to-the-database ({tmp_path / 'rules.yaml'}:8)",
    ]
    unknown = run_cli(
        ["policy", "explain", "--policies", str(tmp_path), "--connection", "web",
         "--identity", "bob", "--host", "teleport"]
    )  # fmt: skip
    assert unknown.status == 2 and "unknown host kind 'teleport'" in unknown.err
