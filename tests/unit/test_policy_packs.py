"""The rule packs shipped in policies/: each passes check and its own test cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hoopd.actions import ADMIN, READ, SQL_KIND_LEVELS
from hoopd.policy import load_policy
from hoopd.policy.checks import KindsCheck
from hoopd.protocols.postgres.classify import KINDS, classify
from tests.unit.test_policy_support import PACKS, judge, run_cli, subject

PACK_NAMES = ["destructive-sql", "strict", "pii-masking", "agent-chains"]


@pytest.mark.parametrize("pack", PACK_NAMES)
def test_pack_passes_check(pack: str) -> None:
    done = run_cli(["policy", "check", str(PACKS / pack)])
    assert done.status == 0, done.out
    assert done.out.startswith(f"{PACKS / pack}: ok: ")


@pytest.mark.parametrize("pack", ["destructive-sql", "strict", "agent-chains"])
def test_pack_passes_its_own_cases(pack: str) -> None:
    done = run_cli(["policy", "test", str(PACKS / pack)])
    assert done.status == 0, done.out
    assert "FAIL" not in done.out
    summary = done.out.splitlines()[-1]
    assert summary.endswith(" passed, 0 failed")
    # Enough cases to cover denials, approvals and harmless look-alikes.
    assert int(summary.split(": ")[1].split()[0]) >= 20


def test_destructive_pack_keeps_look_alikes_allowed() -> None:
    policy = load_policy(PACKS / "destructive-sql")
    for sql in (
        "SELECT 'DROP TABLE x'",
        "SELECT * FROM drop_log",
        "DELETE FROM orders WHERE id = 1",
        "UPDATE orders SET note = 'truncate' WHERE id = 1",
    ):
        assert judge(policy, sql).action == "allow", sql
    assert judge(policy, "DELETE FROM orders").action == "deny"
    assert judge(policy, "DROP TABLE drop_log").action == "approve"


def test_pii_pack_holds_only_mask_rules() -> None:
    policy = load_policy(PACKS / "pii-masking")
    assert policy.rules == ()
    masks = {mask.name: mask for mask in policy.mask_rules()}
    assert set(masks) == {
        "mask-email",
        "mask-card-numbers",
        "mask-ssn",
        "mask-customer-contact-in-production",
    }
    assert masks["mask-ssn"].detectors == ("us-ssn",)
    assert masks["mask-card-numbers"].columns == (
        "card_number",
        "*_card_number",
        "pan",
        "cc_number",
    )
    assert (masks["mask-email"].style, masks["mask-email"].keep_last) == ("keep-last", 4)
    prod = subject(labels={"env": "prod"})
    contact = masks["mask-customer-contact-in-production"]
    assert contact.match.holds(prod, classify("SELECT phone FROM customers"))
    assert not contact.match.holds(subject(), classify("SELECT phone FROM customers"))


def test_combined_packs_take_the_stricter_default(tmp_path: Path) -> None:
    for pack in ("destructive-sql", "strict"):
        for path in (PACKS / pack).glob("*.yaml"):
            if not path.name.endswith(".test.yaml"):
                shutil.copy(path, tmp_path / path.name)
    policy = load_policy(tmp_path)
    assert judge(policy, "SELECT * FROM orders").action == "allow"
    assert judge(policy, "DELETE FROM orders WHERE id = 1").action == "deny"
    # The default is now deny, but rules still decide what they match.
    assert judge(policy, "DROP TABLE orders").action == "approve"
    assert judge(policy, "SELEC 1").action == "deny"


def test_agent_chains_read_only_means_what_a_read_scope_allows() -> None:
    # The pack's list of kinds must follow hoopd.actions, or a deep delegate could run
    # what a read scope would refuse (or be refused what a read scope allows).
    policy = load_policy(PACKS / "agent-chains")
    rule = next(r for r in policy.rules if r.name == "deep-delegates-read-only")
    (kinds,) = [check for check in rule.match.checks if isinstance(check, KindsCheck)]
    beyond_read = {kind for kind in KINDS if SQL_KIND_LEVELS.get(kind, ADMIN) > READ}
    assert kinds.kinds == beyond_read
