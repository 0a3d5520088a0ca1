"""Policy as code: YAML rules that decide, per statement, allow, deny or approve.

The gateway's pipeline needs only what is exported here::

    policy = load_policy(Path("/etc/hoopd/policies"))    # PolicyError lists problems
    verdict = policy.judge(Subject(identity, "prod", labels, "postgres"), statement)

docs/policy.md describes the language; ``hoopd policy`` checks, tests and explains.
"""

from __future__ import annotations

from hoopd.policy.errors import PolicyError
from hoopd.policy.loader import load_policy
from hoopd.policy.policy import Policy
from hoopd.policy.rules import DefaultsEntry, MaskRule, Rule
from hoopd.policy.verdict import Subject, Verdict

__all__ = [
    "DefaultsEntry",
    "MaskRule",
    "Policy",
    "PolicyError",
    "Rule",
    "Subject",
    "Verdict",
    "load_policy",
]
