"""Properties of Policy.judge over arbitrary classifications and subjects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.events import SqlClassification, SqlStatement
from hoopd.identity.base import Identity
from hoopd.policy import Policy, Subject, load_policy
from hoopd.policy.policy import EVALUATION_FAILED
from hoopd.protocols.postgres.classify import KINDS
from tests.unit.test_policy_support import PACKS, write

NAMES = st.one_of(
    st.sampled_from(["t", "public.t", "drop_log", "audit.events", '"A.b"', "db.s.t", ""]),
    st.text(max_size=12),
)
CLASSIFICATIONS = st.builds(
    SqlClassification,
    kinds=st.frozensets(st.one_of(st.sampled_from(sorted(KINDS)), st.text(max_size=8)), max_size=5),
    tables_read=st.frozensets(NAMES, max_size=4),
    tables_written=st.frozensets(NAMES, max_size=4),
    functions=st.frozensets(NAMES, max_size=4),
    statement_count=st.integers(min_value=-1, max_value=5),
    where_absent=st.booleans(),
    opaque=st.booleans(),
    parse_error=st.one_of(st.none(), st.text(max_size=20)),
)
SUBJECTS = st.builds(
    Subject,
    identity=st.builds(
        Identity,
        subject=st.text(max_size=10),
        groups=st.lists(st.text(max_size=6), max_size=3).map(tuple),
        token_id=st.just("tok"),
        actor_chain=st.lists(st.text(max_size=6), max_size=2).map(tuple),
    ),
    connection=st.one_of(st.sampled_from(["prod", "prod-eu", "dev"]), st.text(max_size=8)),
    labels=st.dictionaries(st.sampled_from(["env", "pci"]), st.sampled_from(["prod", "yes", ""])),
    protocol=st.sampled_from(["postgres", "other"]),
)

EVERY_KEY = """
defaults:
  - unmatched: allow
  - labels: {env: prod}
    unmatched: deny
    unparseable: deny
rules:
  - name: everything
    match:
      identity: {subject: "a*", groups: [dba, "s?e"], actor_chain: [bot]}
      connection: ["prod*"]
      labels: {env: prod}
      protocol: postgres
      kinds: [select, unparseable]
      only_kinds: [select, unparseable]
      tables_read: ["public.*"]
      tables_written: [t]
      tables: ['"A.b"', "db.s.*"]
      functions: ["pg_*"]
      where_absent: false
      multi_statement: false
      opaque: false
    action: allow
  - {name: writes, match: {kinds: [insert, update, delete]}, action: approve, approvers: [dba]}
  - {name: drops, match: {kinds: [drop], where_absent: true}, action: deny, message: no}
  - {name: reads, match: {only_kinds: [select], tables: [t]}, action: allow}
"""


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> list[Policy]:
    """A policy using every match key, two shipped packs, and the empty policy."""
    tmp = tmp_path_factory.mktemp("every-key")
    write(tmp, "every-key.yaml", EVERY_KEY)
    return [
        load_policy(tmp),
        load_policy(PACKS / "destructive-sql"),
        load_policy(PACKS / "strict"),
        Policy(()),
    ]


@given(classification=CLASSIFICATIONS, who=SUBJECTS)
@settings(max_examples=300, deadline=None)
def test_judge_never_raises_and_always_decides(
    policies: list[Policy], classification: SqlClassification, who: Subject
) -> None:
    for policy in policies:
        verdict = policy.judge(who, SqlStatement("-- any text", classification))
        assert verdict.action in ("allow", "deny", "approve")
        if verdict.action == "deny":
            assert verdict.message
            # Well-formed input never takes the internal-failure path: that is for bugs.
            assert not verdict.message.startswith(EVALUATION_FAILED)
        if "unparseable" in classification.kinds and verdict.action != "deny":
            # Only a rule naming unparseable text can let it through.
            assert verdict.rule is not None
            rule = next(r for r in policy.rules if r.name == verdict.rule)
            assert rule.match.names_unparseable
        assert set(verdict.matched) <= {rule.name for rule in policy.rules}


@given(classification=CLASSIFICATIONS, who=SUBJECTS)
@settings(max_examples=300, deadline=None)
def test_a_matching_deny_rule_always_wins(
    policies: list[Policy], classification: SqlClassification, who: Subject
) -> None:
    policy = policies[1]
    verdict = policy.judge(who, SqlStatement("-- any text", classification))
    denying = [
        rule.name
        for rule in policy.rules
        if rule.action == "deny" and rule.match.holds(who, classification)
    ]
    if denying:
        assert (verdict.action, verdict.rule) == ("deny", denying[0])


STRICT_READS = frozenset({"select", "show", "explain", "copy-out", "transaction", "empty"})


@given(classification=CLASSIFICATIONS, who=SUBJECTS)
@settings(max_examples=300, deadline=None)
def test_the_strict_pack_allows_nothing_but_reads(
    policies: list[Policy], classification: SqlClassification, who: Subject
) -> None:
    verdict = policies[2].judge(who, SqlStatement("-- any text", classification))
    if verdict.action == "allow":
        assert classification.kinds
        assert classification.kinds <= STRICT_READS
        assert "unparseable" not in classification.kinds
