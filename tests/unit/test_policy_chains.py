"""Rules on the delegation chain: identity.depth, identity.actor, identity.issuer,
and policy test cases and ``hoopd policy explain`` that state a chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from hoopd.identity.base import Identity
from hoopd.policy import Policy, PolicyError, Subject, Verdict
from tests.unit.test_policy_support import judge, policy_from, run_cli, write


def caller(
    who: str = "alice",
    actors: Sequence[str] = (),
    groups: Sequence[str] = (),
    issuer: str = "hoopd",
) -> Subject:
    identity = Identity(who, tuple(groups), "tok-1", tuple(actors), issuer=issuer)
    return Subject(identity, "prod", {}, "postgres")


def verdict(policy: Policy, sql: str, who: Subject) -> Verdict:
    return judge(policy, sql, who)


def only_when(tmp_path: Path, identity: str) -> Policy:
    """A policy allowing what ``identity`` (a YAML flow mapping) holds for, and denying
    everything else."""
    return policy_from(
        tmp_path,
        f"""
        rules:
          - {{name: this, match: {{identity: {identity}}}, action: allow}}
        """,
    )


@pytest.mark.parametrize(
    ("identity", "actors", "holds"),
    [
        ("{depth: 0}", [], True),
        ("{depth: 0}", ["ci"], False),
        ("{depth: 2}", ["ci", "agent"], True),
        ("{depth: '>= 2'}", ["ci"], False),
        ("{depth: '>= 2'}", ["ci", "agent"], True),
        ("{depth: '>=2'}", ["ci", "agent", "sub"], True),
        ("{depth: '< 1'}", [], True),
        ("{depth: '< 1'}", ["ci"], False),
        ("{depth: '> 0'}", ["ci"], True),
        ("{depth: '<= 1'}", ["ci", "agent"], False),
        ("{depth: '!= 0'}", [], False),
        ("{depth: '== 1'}", ["ci"], True),
        ("{depth: '1'}", ["ci"], True),
    ],
)
def test_depth_compares_the_number_of_hops(
    tmp_path: Path, identity: str, actors: list[str], holds: bool
) -> None:
    policy = only_when(tmp_path, identity)
    assert verdict(policy, "SELECT 1", caller(actors=actors)).action == (
        "allow" if holds else "deny"
    )


@pytest.mark.parametrize(
    ("identity", "who", "actors", "holds"),
    [
        # A direct token's actor is its subject: a CI job using its own token is caught.
        ("{actor: 'ci-*'}", "ci-nightly", [], True),
        ("{actor: 'ci-*'}", "alice", ["ci-nightly"], True),
        # Only the actor calling now counts, not one earlier in the chain.
        ("{actor: 'ci-*'}", "alice", ["ci-nightly", "agent"], False),
        ("{actor_chain: 'ci-*'}", "alice", ["ci-nightly", "agent"], True),
        # actor_chain never names the subject: it lists the hops.
        ("{actor_chain: 'ci-*'}", "ci-nightly", [], False),
        ("{subject: alice}", "alice", ["ci", "agent"], True),
    ],
)
def test_actor_is_the_one_calling_now(
    tmp_path: Path, identity: str, who: str, actors: list[str], holds: bool
) -> None:
    policy = only_when(tmp_path, identity)
    expected = "allow" if holds else "deny"
    assert verdict(policy, "SELECT 1", caller(who=who, actors=actors)).action == expected


def test_issuer_matches_who_issued_the_token(tmp_path: Path) -> None:
    policy = only_when(tmp_path, "{issuer: [hoopd, 'corp-*']}")
    assert verdict(policy, "SELECT 1", caller(issuer="hoopd")).action == "allow"
    assert verdict(policy, "SELECT 1", caller(issuer="corp-okta")).action == "allow"
    assert verdict(policy, "SELECT 1", caller(issuer="static")).action == "deny"


def test_at_depth_two_or_more_only_reads_pass(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults: [{unmatched: allow}]
        rules:
          - name: deep-delegates-read-only
            match:
              identity: {depth: ">= 2"}
              kinds: [insert, update, delete, merge, copy-in, truncate, drop, ddl, alter]
            action: deny
            message: tokens delegated twice or more may only read
        """,
    )
    deep = caller(actors=["ci-job", "sub-agent"])
    assert verdict(policy, "SELECT * FROM orders", deep).action == "allow"
    refused = verdict(policy, "SELECT 1; DELETE FROM orders WHERE id = 1", deep)
    assert (refused.action, refused.rule) == ("deny", "deep-delegates-read-only")
    shallow = caller(actors=["ci-job"])
    assert verdict(policy, "DELETE FROM orders WHERE id = 1", shallow).action == "allow"


def test_at_depth_two_or_more_only_kinds_allows_reads_alone(tmp_path: Path) -> None:
    # In a policy that denies by default, allow rules say what each depth may do.
    policy = policy_from(
        tmp_path,
        """
        defaults: [{unmatched: deny}]
        rules:
          - name: shallow-anything
            match: {identity: {depth: "< 2"}}
            action: allow
          - name: deep-reads-only
            match: {identity: {depth: ">= 2"}, only_kinds: [select, show, explain]}
            action: allow
        """,
    )
    deep = caller(actors=["ci-job", "sub-agent"])
    assert verdict(policy, "SELECT * FROM t", deep).rule == "deep-reads-only"
    # only_kinds: a read with a write in the same text is not a read.
    assert verdict(policy, "SELECT 1; INSERT INTO t VALUES (1)", deep).action == "deny"
    assert verdict(policy, "INSERT INTO t VALUES (1)", caller(actors=["ci-job"])).action == (
        "allow"
    )


def test_anything_started_by_contractors_needs_approval(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults: [{unmatched: allow}]
        rules:
          - name: contractors-need-approval
            match: {identity: {groups: [contractors]}}
            action: approve
            approvers: [dba]
        """,
    )
    # The groups are the root's: an agent acting for a contractor carries them.
    started = caller(who="eve", groups=["contractors"], actors=["ci-job", "agent"])
    decided = verdict(policy, "SELECT 1", started)
    assert (decided.action, decided.rule) == ("approve", "contractors-need-approval")
    assert verdict(policy, "SELECT 1", caller(groups=["staff"], actors=["agent"])).action == (
        "allow"
    )


def test_scraper_anywhere_in_the_chain_is_denied(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults: [{unmatched: allow}]
        rules:
          - name: no-scrapers
            match: {identity: {actor_chain: ["scraper-*"]}}
            action: deny
            message: scraper agents may not use this gateway
        """,
    )
    for chain in (["scraper-7"], ["ci-job", "scraper-7"], ["scraper-7", "ci-job", "agent"]):
        assert verdict(policy, "SELECT 1", caller(actors=chain)).action == "deny", chain
    assert verdict(policy, "SELECT 1", caller(actors=["ci-job"])).action == "allow"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "match.identity.depth must not be negative (got -1 (a number))"),
        ("'>= two'", "match.identity.depth must be a whole number or a comparison"),
        ("'=> 2'", "match.identity.depth must be a whole number or a comparison"),
        ("[1, 2]", "match.identity.depth must be a whole number or a comparison"),
        ("1.5", "match.identity.depth must be a whole number or a comparison"),
    ],
)
def test_a_bad_depth_is_a_problem_with_its_line(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        only_when(tmp_path, f"{{depth: {value}}}")
    (line,) = caught.value.problems
    assert line.startswith(f"{tmp_path / 'rules.yaml'}:2: rule 'this': {problem}")


def test_root_subject_is_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        only_when(tmp_path, "{root_subject: alice}")
    assert (
        "write subject: it is already the root of the delegation chain"
        in (caught.value.problems[0])
    )


CHAIN_RULES = """
defaults: [{unmatched: allow}]
rules:
  - name: deep-read-only
    match: {identity: {depth: ">= 2"}, kinds: [insert, delete]}
    action: deny
    message: read only
  - name: oidc-only
    match: {identity: {issuer: static, actor: "agent-*"}}
    action: deny
    message: agents use minted tokens
"""


def test_cases_state_the_chain_and_the_issuer(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", CHAIN_RULES)
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - sql: DELETE FROM t WHERE id = 1
            identity: {subject: alice, actor_chain: [ci, agent-1]}
            issuer_is_left_out: true
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 1  # an unknown case key is a problem, not a silent pass
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - sql: DELETE FROM t WHERE id = 1
            identity: {subject: alice, actor_chain: [ci, agent-1], issuer: hoopd}
            expect: deny
            rule: deep-read-only
          - sql: DELETE FROM t WHERE id = 1
            identity: {subject: alice, actor_chain: [ci], issuer: hoopd}
            expect: allow
          - sql: SELECT 1
            identity: {subject: alice, actor_chain: [agent-1]}
            expect: deny
            rule: oidc-only
          - sql: SELECT 1
            identity: {subject: agent-1}
            expect: deny
            rule: oidc-only
        """,
    )
    done = run_cli(["policy", "test", str(tmp_path)])
    assert done.status == 0, done.out
    assert done.out.endswith("4 cases, 4 passed, 0 failed\n")


def test_a_case_giving_depth_is_told_to_list_the_actors(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", CHAIN_RULES)
    write(
        tmp_path,
        "rules.test.yaml",
        """
        cases:
          - {sql: SELECT 1, expect: allow, identity: {subject: alice, depth: 2}}
        """,
    )
    done = run_cli(["policy", "check", str(tmp_path)])
    assert done.status == 1
    assert "unknown key 'depth' (the depth is the length of actor_chain" in done.out


def test_explain_prints_the_chain_and_judges_by_it(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", CHAIN_RULES)
    done = run_cli(
        [
            "policy", "explain", "--policies", str(tmp_path), "--connection", "prod",
            "--identity", "alice", "--group", "dev", "--actor", "ci-job", "--actor", "agent-1",
            "--sql", "DELETE FROM t WHERE id = 1",
        ]
    )  # fmt: skip
    assert done.status == 0
    lines = done.out.splitlines()
    assert lines[0] == "verdict: deny"
    assert "caller: alice > ci-job > agent-1 (groups dev), depth 2, issuer static" in lines
    assert "      identity.depth: depth 2 is >= 2" in lines
    assert "      identity.actor: 'agent-1' matches 'agent-*'" in lines
    done = run_cli(
        [
            "policy", "explain", "--policies", str(tmp_path), "--connection", "prod",
            "--identity", "alice", "--actor", "agent-1", "--issuer", "hoopd", "--sql", "SELECT 1",
        ]
    )  # fmt: skip
    lines = done.out.splitlines()
    assert lines[0] == "verdict: allow"
    assert "caller: alice > agent-1, depth 1, issuer hoopd" in lines
    assert "      identity.issuer: 'hoopd' matches none of [static]  [does not hold]" in lines
