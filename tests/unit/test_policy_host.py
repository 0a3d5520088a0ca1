"""Host commands (SSH) through the one policy and the one pipeline: rules on the
command line, program, paths and destination; SQL rules never match a host command
and host rules never match a SQL statement; the token's scope covers host commands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hoopd.actions import ADMIN, READ, WRITE, level_of
from hoopd.events import HostCommand
from hoopd.identity.base import Identity
from hoopd.policy import Policy, PolicyError, Subject
from tests.unit.test_policy_support import judge, policy_from

POLICY = """
rules:
  - name: no-shadow
    match: {command: ["cat /etc/shadow*", "* /etc/shadow*"]}
    action: deny
    message: /etc/shadow stays on the host
  - name: restarts-need-approval
    match: {program: [systemctl], command: ["systemctl restart *"]}
    action: approve
    approvers: [oncall]
  - name: no-shells-for-agents
    match: {kinds: [shell], identity: {depth: ">= 1"}}
    action: deny
    message: agents run commands, not shells
  - name: no-secret-files
    match: {kinds: [sftp-read, sftp-write], paths: ["/srv/secrets/*"]}
    action: deny
    message: secrets stay put
  - name: no-drop
    match: {kinds: [drop]}
    action: deny
    message: no drops
  - name: the-rest
    action: allow
"""


def ssh(actors: tuple[str, ...] = ()) -> Subject:
    return Subject(Identity("alice", ("dev",), "tok", actors), "web1", {}, "ssh")


def exec_(line: str) -> HostCommand:
    return HostCommand("exec", line, tuple(shlex.split(line)))


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return policy_from(tmp_path, POLICY)


@pytest.mark.parametrize(
    ("command", "action", "rule"),
    [
        (exec_("cat /etc/shadow"), "deny", "no-shadow"),
        (exec_("less /etc/shadow-"), "deny", "no-shadow"),
        (exec_("cat /etc/passwd"), "allow", "the-rest"),
        (exec_("systemctl restart nginx"), "approve", "restarts-need-approval"),
        (exec_("/usr/bin/systemctl restart nginx"), "allow", "the-rest"),  # command glob
        (exec_("systemctl status nginx"), "allow", "the-rest"),
        (exec_("drop"), "allow", "the-rest"),  # a SQL kind rule never matches a host command
        (HostCommand("sftp-read", "open /srv/secrets/key for read", paths=("/srv/secrets/key",)),
         "deny", "no-secret-files"),
        (HostCommand("sftp-read", "open /srv/app/log for read", paths=("/srv/app/log",)),
         "allow", "the-rest"),
        (HostCommand("shell", "shell"), "allow", "the-rest"),
    ],
)  # fmt: skip
def test_rules_on_host_commands(
    policy: Policy, command: HostCommand, action: str, rule: str
) -> None:
    verdict = policy.judge(ssh(), command)
    assert (verdict.action, verdict.rule) == (action, rule)


def test_a_shell_is_denied_to_an_agent_but_not_to_its_root(policy: Policy) -> None:
    shell = HostCommand("shell", "shell")
    assert policy.judge(ssh(("ci-job",)), shell).rule == "no-shells-for-agents"
    assert policy.judge(ssh(), shell).action == "allow"


def test_host_rules_never_match_sql(policy: Policy) -> None:
    assert judge(policy, "select 'cat /etc/shadow'").rule == "the-rest"
    assert judge(policy, "drop table t").rule == "no-drop"


def test_host_kinds_and_keys_are_checked_when_loading(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as refused:
        policy_from(tmp_path, "rules:\n  - {name: r, match: {kinds: [shel]}, action: deny}\n")
    assert "did you mean 'shell'" in "\n".join(refused.value.problems)


@pytest.mark.parametrize(
    ("kind", "level"),
    [("sftp-read", READ), ("exec", WRITE), ("sftp-remove", WRITE), ("forward", WRITE),
     ("shell", ADMIN), ("remote-forward", ADMIN), ("agent-forward", ADMIN)],
)  # fmt: skip
def test_what_a_host_command_needs_from_a_scope(kind: str, level: int) -> None:
    assert level_of(HostCommand(kind, kind).classification) == level
