"""remote-forward, agent-forward and x11: refused unless a rule naming the kind
allows them, whatever the default; host commands in policy test cases; the
ssh-forwarding pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoopd.events import NAMED_ONLY_KINDS, HostCommand
from hoopd.policy.explain import explain
from tests.unit.test_policy_support import PACKS, policy_from, run_cli, subject, write

SSH = subject(protocol="ssh", groups=["ops"])

REMOTE = HostCommand(
    "remote-forward", "listen on localhost:8080 on the target", destination="localhost:8080"
)


@pytest.mark.parametrize("kind", sorted(NAMED_ONLY_KINDS))
def test_an_allow_everything_default_and_rule_do_not_allow_them(tmp_path: Path, kind: str) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults:
          - unmatched: allow
        rules:
          - name: everything
            action: allow
          - name: ops-anything
            match: {identity: {groups: [ops]}}
            action: allow
        """,
    )
    verdict = policy.judge(SSH, HostCommand(kind, kind))
    assert verdict.action == "deny" and verdict.rule is None
    assert verdict.message == (
        f"denied by policy: {kind} is refused unless a rule allows it by name (kinds: [{kind}])"
    )
    assert verdict.matched == ("everything", "ops-anything")
    # Everything else still gets the default and the rules.
    assert policy.judge(SSH, HostCommand("exec", "ls")).rule == "everything"
    assert policy.judge(SSH, HostCommand("forward", "f", destination="db:5432")).action == "allow"


def test_a_rule_naming_the_kind_allows_or_approves_it(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - name: loopback-listeners
            match: {kinds: [remote-forward], destination: ["localhost:*"]}
            action: allow
          - name: agents-approved
            match: {only_kinds: [agent-forward]}
            action: approve
            approvers: [security]
          - name: no-x11
            match: {kinds: [x11]}
            action: deny
            message: no X11 here
        """,
    )
    assert policy.judge(SSH, REMOTE).rule == "loopback-listeners"
    elsewhere = HostCommand("remote-forward", "listen", destination="0.0.0.0:8080")
    assert policy.judge(SSH, elsewhere).action == "deny"
    assert policy.judge(SSH, HostCommand("agent-forward", "a")).action == "approve"
    x11 = policy.judge(SSH, HostCommand("x11", "x"))
    assert (x11.action, x11.rule, x11.message) == ("deny", "no-x11", "no X11 here")


def test_explain_says_why_a_matching_rule_cannot_allow_it(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "rules:\n  - name: everything\n    action: allow\n")
    lines = explain(policy, SSH, REMOTE)
    assert lines[0] == "verdict: deny"
    assert (
        "deciding rule: none (remote-forward is refused unless a rule allows it by name)" in lines
    )
    assert "      (does not name the remote-forward kind, so it cannot allow it)" in lines


def test_cases_can_hold_host_commands(tmp_path: Path) -> None:
    write(
        tmp_path,
        "rules.yaml",
        """
        defaults:
          - unmatched: allow
        rules:
          - name: loopback-listeners
            match: {kinds: [remote-forward], destination: ["localhost:*"]}
            action: allow
          - name: no-restarts
            match: {program: systemctl, command: "systemctl restart *"}
            action: deny
            message: no restarts
        """,
    )
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - host: {kind: remote-forward, destination: "localhost:8080"}
            expect: allow
            rule: loopback-listeners
          - host: {kind: remote-forward, destination: "0.0.0.0:8080"}
            expect: deny
            rule: null
          - host: {kind: exec, command: "systemctl restart nginx"}
            expect: deny
            rule: no-restarts
          - host: {kind: agent-forward}
            expect: allow
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1
    assert "FAIL" in done.out and "host:     agent-forward agent-forward" in done.out
    assert done.out.splitlines()[-1].endswith("4 cases, 3 passed, 1 failed")


def test_a_broken_host_case_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", "rules:\n  - name: r\n    action: allow\n")
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - host: {kind: remote-forwards}
            expect: deny
          - host: {kind: exec, command: ls}
            sql: SELECT 1
            expect: allow
          - host: {command: ls}
            expect: allow
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1
    assert "unknown host kind 'remote-forwards'" in done.out
    assert "give sql or host, not both" in done.out
    assert "missing kind" in done.out


def test_the_ssh_forwarding_pack_passes_check_and_its_cases() -> None:
    pack = str(PACKS / "ssh-forwarding")
    assert run_cli(["policy", "check", pack]).status == 0
    done = run_cli(["policy", "test", pack])
    assert done.status == 0, done.out
    assert done.out.splitlines()[-1].endswith(" passed, 0 failed")
