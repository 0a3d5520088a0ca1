"""Which of the policy's mask rules cover a session, and the deployment's masking key.

A mask rule covers a session when the parts of its ``match`` about who and where
(identity, connection, labels, protocol) hold; the rule's columns and detectors
then decide, per result, what is masked. Keys about statements (kinds, tables) do
not narrow a mask rule: masking more than asked is the safe side.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final, cast

from hoopd.events import SqlClassification
from hoopd.masking.rules import MaskRule, MaskStyle
from hoopd.policy import rules as policy_rules
from hoopd.policy.policy import Policy
from hoopd.policy.verdict import Subject
from hoopd.private_file import write_new_private

KEY_FILE: Final = "masking.key"
KEY_BYTES: Final = 32
_SUBJECT_KEYS: Final = frozenset({"identity", "connection", "labels", "protocol"})
# Subject checks never read the classification; this stands in for it.
_NO_STATEMENT: Final = SqlClassification(kinds=frozenset({"empty"}), statement_count=0)


def covering_rules(policy: Policy, subject: Subject) -> list[MaskRule]:
    """The mask rules that apply to ``subject``'s session, in policy order."""
    return [_masking_rule(rule) for rule in policy.mask_rules() if _covers(rule, subject)]


def load_key(data_dir: Path) -> bytes:
    """The deployment's key for ``hmac`` tokens: created once (0600), then reused, so
    the same value gets the same token across restarts."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        write_new_private(path, key)
        return key
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes; a masking key needs {KEY_BYTES}")
    return key


def _covers(rule: policy_rules.MaskRule, subject: Subject) -> bool:
    return all(
        check.holds(subject, _NO_STATEMENT)
        for check in rule.match.checks
        if check.key.split(".")[0] in _SUBJECT_KEYS
    )


def _masking_rule(rule: policy_rules.MaskRule) -> MaskRule:
    # The loader accepts only the masking stage's styles (policy_rules.MASK_STYLES).
    return MaskRule(
        name=rule.name,
        columns=rule.columns,
        detectors=rule.detectors,
        style=cast(MaskStyle, rule.style),
        keep_last=rule.keep_last,
    )
