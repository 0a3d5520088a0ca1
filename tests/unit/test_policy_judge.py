"""Policy.judge: precedence, defaults, every match key, and failing closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from hoopd.events import SqlClassification, SqlStatement
from hoopd.policy import Policy, Subject
from tests.unit.test_policy_support import judge, policy_from, subject


def test_deny_beats_approve_beats_allow_whatever_the_order(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - {name: allow-all, action: allow}
          - name: approve-writes
            match: {kinds: [delete, drop]}
            action: approve
            approvers: [dba]
          - {name: deny-drop, match: {kinds: [drop]}, action: deny, message: no drops}
        """,
    )
    assert judge(policy, "SELECT 1").action == "allow"
    approve = judge(policy, "DELETE FROM t WHERE id = 1")
    assert (approve.action, approve.rule) == ("approve", "approve-writes")
    assert approve.matched == ("allow-all", "approve-writes")
    deny = judge(policy, "DROP TABLE t")
    assert (deny.action, deny.rule, deny.message) == ("deny", "deny-drop", "no drops")
    assert deny.matched == ("allow-all", "approve-writes", "deny-drop")


def test_the_first_rule_of_the_winning_action_decides(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - {name: first, match: {kinds: [drop]}, action: deny, message: first says no}
          - {name: second, match: {kinds: [drop]}, action: deny, message: second says no}
        """,
    )
    verdict = judge(policy, "DROP TABLE t")
    assert (verdict.rule, verdict.message) == ("first", "first says no")
    assert verdict.matched == ("first", "second")


def test_an_approve_verdict_carries_what_the_approval_needs(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - name: drop-needs-approval
            match: {kinds: [drop]}
            action: approve
            approvers: [dba, sre]
            min_approvals: 2
            deadline: 15m
            message: a DBA must look at this
        """,
    )
    verdict = judge(policy, "DROP TABLE t")
    assert verdict.action == "approve"
    assert verdict.approvers == ("dba", "sre")
    assert verdict.min_approvals == 2
    assert verdict.deadline_seconds == 900.0
    assert verdict.message == "a DBA must look at this"


def test_with_no_defaults_an_unmatched_statement_is_denied(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "rules:\n  - {name: r, match: {kinds: [drop]}, action: allow}\n")
    verdict = judge(policy, "SELECT 1", subject(connection="reports"))
    assert (verdict.action, verdict.rule) == ("deny", None)
    assert (
        verdict.message == "denied by policy: no rule allows this statement on connection 'reports'"
    )


def test_defaults_select_connections_by_name_and_labels(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults:
          - unmatched: deny
          - connection: ["dev-*", sandbox]
            unmatched: allow
          - labels: {env: staging}
            unmatched: allow
          - labels: {env: staging, pci: "yes"}
            unmatched: deny
        """,
    )
    assert judge(policy, "SELECT 1", subject(connection="prod")).action == "deny"
    assert judge(policy, "SELECT 1", subject(connection="dev-7")).action == "allow"
    assert judge(policy, "SELECT 1", subject(connection="sandbox")).action == "allow"
    staging = subject(connection="s1", labels={"env": "staging"})
    assert judge(policy, "SELECT 1", staging).action == "allow"
    # Two specific entries disagree: deny wins.
    pci = subject(connection="s2", labels={"env": "staging", "pci": "yes"})
    verdict = judge(policy, "SELECT 1", pci)
    assert (verdict.action, verdict.rule) == ("deny", None)


def test_general_defaults_from_two_packs_combine_to_the_stricter(tmp_path: Path) -> None:
    policy_from(tmp_path, "defaults:\n  - unmatched: allow\n", "a.yaml")
    policy = policy_from(tmp_path, "defaults:\n  - unmatched: deny\n", "b.yaml")
    assert judge(policy, "SELECT 1").action == "deny"


def test_unparseable_text_is_denied_even_when_unmatched_is_allow(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults:
          - unmatched: allow
        rules:
          - {name: dbas, match: {identity: {groups: [dba]}}, action: allow}
        """,
    )
    verdict = judge(policy, "SELEC * FROM t", subject(groups=["dba"]))
    assert (verdict.action, verdict.rule) == ("deny", None)
    assert verdict.message is not None
    assert 'syntax error at or near "SELEC"' in verdict.message
    # The identity-only rule matched, but it does not name unparseable text.
    assert verdict.matched == ("dbas",)
    assert judge(policy, "SELECT 1", subject(groups=["dba"])).action == "allow"


def test_a_rule_naming_the_unparseable_kind_can_allow_it(tmp_path: Path) -> None:
    rules = """
        rules:
          - {name: raw-sql, match: {identity: {groups: [dba]}, kinds: [unparseable]}, action: allow}
        """
    policy = policy_from(tmp_path, rules)
    assert judge(policy, "SELEC 1", subject(groups=["dba"])).rule == "raw-sql"
    assert judge(policy, "SELEC 1", subject(groups=["dev"])).action == "deny"
    # unparseable: deny in a defaults entry for the connection overrides the rule.
    policy = policy_from(
        tmp_path,
        "defaults:\n  - connection: prod\n    unparseable: deny\n",
        "strict.yaml",
    )
    assert judge(policy, "SELEC 1", subject(groups=["dba"], connection="prod")).action == "deny"
    assert judge(policy, "SELEC 1", subject(groups=["dba"], connection="dev")).action == "allow"


def test_a_deny_rule_still_decides_on_unparseable_text(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - name: interns
            match: {identity: {subject: intern-*}}
            action: deny
            message: read only
        """,
    )
    verdict = judge(policy, "SELEC 1", subject(who="intern-3"))
    assert (verdict.action, verdict.rule, verdict.message) == ("deny", "interns", "read only")


# Each match key: a policy allowing only what the key holds for, denying the rest.
KEY_CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("identity: {subject: alice}", "SELECT 1", {"who": "alice"}, True),
    ("identity: {subject: alice}", "SELECT 1", {"who": "alicia"}, False),
    ("identity: {subject: 'svc-*'}", "SELECT 1", {"who": "svc-billing"}, True),
    ("identity: {subject: 'svc-?'}", "SELECT 1", {"who": "svc-12"}, False),
    ("identity: {groups: [dba, sre]}", "SELECT 1", {"groups": ["dev", "sre"]}, True),
    ("identity: {groups: [dba, sre]}", "SELECT 1", {"groups": ["dev"]}, False),
    ("identity: {groups: [dba]}", "SELECT 1", {"groups": ["DBA"]}, False),
    ("identity: {actor_chain: [ci-bot]}", "SELECT 1", {"actors": ["portal", "ci-bot"]}, True),
    ("identity: {actor_chain: [ci-bot]}", "SELECT 1", {}, False),
    ("identity: {subject: alice, groups: [dba]}", "SELECT 1", {"who": "alice"}, False),
    ("connection: 'prod-*'", "SELECT 1", {"connection": "prod-eu"}, True),
    ("connection: 'prod-*'", "SELECT 1", {"connection": "preprod-eu"}, False),
    ("connection: [a, b]", "SELECT 1", {"connection": "b"}, True),
    ("labels: {env: prod, tier: db}", "SELECT 1", {"labels": {"env": "prod", "tier": "db"}}, True),
    ("labels: {env: prod, tier: db}", "SELECT 1", {"labels": {"env": "prod"}}, False),
    ("labels: {env: prod}", "SELECT 1", {"labels": {"env": "production"}}, False),
    ("protocol: postgres", "SELECT 1", {}, True),
    ("protocol: postgres", "SELECT 1", {"protocol": "mysql"}, False),
    ("kinds: [insert, update]", "UPDATE t SET a = 1 WHERE id = 2", {}, True),
    ("kinds: [insert, update]", "SELECT 1; INSERT INTO t VALUES (1)", {}, True),
    ("kinds: [insert, update]", "DELETE FROM t WHERE id = 1", {}, False),
    ("only_kinds: [select]", "SELECT * FROM t", {}, True),
    ("only_kinds: [select]", "SELECT 1; DROP TABLE t", {}, False),
    ("only_kinds: [select]", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {}, False),
    ("tables_read: [accounts]", "SELECT * FROM public.accounts", {}, True),
    ("tables_read: [accounts]", "INSERT INTO accounts VALUES (1)", {}, False),
    ("tables_written: [accounts]", "INSERT INTO accounts SELECT * FROM staging", {}, True),
    ("tables_written: [accounts]", "INSERT INTO staging SELECT * FROM accounts", {}, False),
    ("tables: [accounts]", "INSERT INTO staging SELECT * FROM accounts", {}, True),
    ("tables: [accounts]", "SELECT * FROM accounts_archive", {}, False),
    ("tables: ['drop_*']", "SELECT * FROM drop_log", {}, True),
    ("tables: ['audit.*']", "SELECT * FROM audit.events", {}, True),
    ("tables: ['audit.*']", "SELECT * FROM events", {}, False),
    ("tables: [public.users]", "SELECT * FROM users", {}, True),
    ("tables: [public.users]", "SELECT * FROM app.users", {}, False),
    ("tables: [Users]", "SELECT * FROM USERS", {}, True),
    ("tables: ['\"Users\"']", "SELECT * FROM users", {}, False),
    ("tables: ['\"Users\"']", 'SELECT * FROM "Users"', {}, True),
    ("functions: [pg_read_file]", "SELECT pg_catalog.pg_read_file('/etc/passwd')", {}, True),
    ("functions: ['pg_catalog.pg_read_*']", "SELECT pg_read_file('/etc/passwd')", {}, True),
    ("functions: ['dblink*']", "SELECT now()", {}, False),
    ("where_absent: true", "DELETE FROM t", {}, True),
    ("where_absent: true", "DELETE FROM t WHERE id = 1", {}, False),
    ("where_absent: false", "DELETE FROM t WHERE id = 1", {}, True),
    ("multi_statement: true", "SELECT 1; SELECT 2", {}, True),
    ("multi_statement: true", "SELECT 1", {}, False),
    ("multi_statement: false", "SELECT 1", {}, True),
    ("opaque: true", "EXECUTE q", {}, True),
    ("opaque: true", "SELECT 1", {}, False),
    ("", "VACUUM", {}, True),
]


@pytest.mark.parametrize(("match", "sql", "who", "holds"), KEY_CASES)
def test_match_key(tmp_path: Path, match: str, sql: str, who: dict[str, Any], holds: bool) -> None:
    rule = f"rules:\n  - name: r\n    match: {{{match}}}\n    action: allow\n"
    policy = policy_from(tmp_path, rule)
    verdict = judge(policy, sql, subject(**who))
    assert verdict.action == ("allow" if holds else "deny")
    assert verdict.matched == (("r",) if holds else ())


def test_evaluation_failure_is_a_deny_not_an_exception(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path, "rules:\n  - {name: r, match: {labels: {env: prod}}, action: allow}\n"
    )
    broken = Subject(subject().identity, "prod", cast(Any, None), "postgres")
    verdict = policy.judge(
        broken, SqlStatement("SELECT 1", SqlClassification(frozenset({"select"})))
    )
    assert verdict.action == "deny"
    assert verdict.rule is None
    assert verdict.message is not None and "could not be evaluated" in verdict.message


def test_mask_rules_are_available_but_never_decide(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults:
          - unmatched: allow
        rules:
          - {name: emails, action: mask, columns: [email], style: hmac}
        """,
    )
    verdict = judge(policy, "SELECT email FROM users")
    assert (verdict.action, verdict.rule, verdict.matched) == ("allow", None, ())
    (mask,) = policy.mask_rules()
    assert (mask.name, mask.columns, mask.style) == ("emails", ("email",), "hmac")
    assert policy.rules == ()


def test_an_empty_policy_denies_everything() -> None:
    policy = Policy(())
    assert judge(policy, "SELECT 1").action == "deny"
