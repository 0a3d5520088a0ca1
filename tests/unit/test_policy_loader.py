"""Loading a policy directory: every problem is named with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoopd.identity.base import Identity
from hoopd.masking import Masker
from hoopd.policy import PolicyError, load_policy
from hoopd.policy.rules import MASK_DETECTORS, MASK_STYLES
from hoopd.policy.verdict import Subject
from hoopd.session_masking import covering_rules
from tests.unit.test_policy_support import write


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_a_valid_directory_loads_its_rules_in_file_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "rules:\n  - {name: second, action: allow}\n")
    write(tmp_path, "a.yml", "rules:\n  - {name: first, action: allow}\n")
    write(tmp_path, "a.test.yaml", "cases: []\n")  # test files are not policy files
    write(tmp_path, "README.md", "not yaml: [")
    policy = load_policy(tmp_path)
    assert [rule.name for rule in policy.rules] == ["first", "second"]
    assert [path.name for path in policy.files] == ["a.yml", "b.yaml"]


def test_unknown_key_names_file_line_and_suggests_the_right_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: no-drop
            match:
              kind: [drop]
            action: deny
            message: no
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:4: rule 'no-drop': match: unknown key 'kind' (did you mean 'kinds'?)"
    ]


def test_dotted_identity_key_gets_advice_on_the_nested_spelling(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: ops
            match:
              identity.groups: [ops]
            action: allow
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:4: rule 'ops': match: unknown key 'identity.groups'"
        " (write identity: {groups: ...})"
    ]


def test_unknown_kind_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: no-drop
            match: {kinds: [select, drops]}
            action: deny
            message: no
        """,
    )
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}:3: rule 'no-drop': match.kinds: unknown kind 'drops'")
    assert "did you mean 'drop'?" in problem


def test_wrong_types_are_named_with_what_was_found(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: r1
            match:
              where_absent: "yes"
              labels: {tier: [1]}
              connection: {prod: true}
            action: allow
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:4: rule 'r1': match.where_absent must be true or false (got 'yes')",
        f"{path}:5: rule 'r1': match.labels.tier must be a string (got a list)",
        f"{path}:6: rule 'r1': match.connection must be a string or a list of strings"
        " (got a mapping)",
    ]


def test_duplicate_rule_names_across_files_name_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "rules:\n  - {name: same, action: allow}\n")
    second = write(
        tmp_path,
        "b.yaml",
        "rules:\n  - {name: other, action: allow}\n  - name: same\n    action: allow\n",
    )
    assert problems_of(tmp_path) == [f"{second}:3: rule name 'same' is already used at {first}:2"]


def test_a_key_given_twice_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: r
            action: allow
            action: deny
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:4: rules[0]: 'action' is given twice (first at line 3)"
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "rules:\n  - name: a\n    action: [allow\n")
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}:4: not valid YAML:")


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - name: deny-without-message
            match: {kinds: [drop]}
            action: deny
          - name: bad-approval
            action: approve
            min_approvals: 0
            deadline: soon
          - action: allow
        """,
    )
    b = write(
        tmp_path,
        "b.yaml",
        """
        defaults:
          - unmatched: maybe
        rules:
          - name: bad-name!
            action: block
        """,
    )
    assert problems_of(tmp_path) == [
        f"{a}:2: rule 'deny-without-message': missing message (the text the user is shown)",
        f"{a}:5: rule 'bad-approval': missing approvers (the groups that may approve)",
        f"{a}:7: rule 'bad-approval': min_approvals must be at least 1 (got 0)",
        f"{a}:8: rule 'bad-approval': deadline must be a duration of more than zero, such as"
        " 90s, 15m, 1h30m, 2d or a number of seconds",
        f"{a}:9: rules[2]: missing name (every rule needs a unique name)",
        f"{b}:4: rules[0]: name 'bad-name!' may contain only letters, digits, '_', '.' and '-'"
        " and must start with a letter or digit",
        f"{b}:5: rules[0]: action must be one of allow, deny, approve, mask (got 'block')",
        f"{b}:2: defaults[0]: unmatched must be allow or deny (got 'maybe')",
    ]


def test_keys_of_another_action_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: r
            action: deny
            message: no
            approvers: [dba]
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:5: rule 'r': 'approvers' is used only with action: approve, not deny"
    ]


def test_mask_rules_are_validated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "masks.yaml",
        """
        rules:
          - name: m1
            action: mask
            detectors: [email, passport, "regex:[0-9"]
            style: blur
          - name: m2
            action: mask
          - name: m3
            action: mask
            columns: [a.b.c.d, "users.*"]
            keep_last: 2
        """,
    )
    problems = problems_of(tmp_path)
    assert problems[0] == (
        f"{path}:4: rule 'm1': detectors: unknown detector 'passport' (known: email, card,"
        " us-ssn, iban, phone, jwt, aws-access-key, gcp-api-key, private-key, bearer-token,"
        " or regex:<pattern>)"
    )
    assert problems[1].startswith(
        f"{path}:4: rule 'm1': detectors: 'regex:[0-9' is not a valid regular expression:"
    )
    assert problems[2:] == [
        f"{path}:5: rule 'm1': style must be one of redact, keep-last, hmac (got 'blur')",
        f"{path}:6: rule 'm2': a mask rule needs columns, detectors or both",
        f"{path}:10: rule 'm3': columns: 'a.b.c.d' is not column, table.column or"
        " schema.table.column",
        f"{path}:11: rule 'm3': keep_last is used only with style: keep-last",
    ]


def test_mask_rules_carry_what_the_masking_stage_needs(tmp_path: Path) -> None:
    write(
        tmp_path,
        "masks.yaml",
        """
        rules:
          - name: cards
            match: {labels: {env: prod}}
            action: mask
            columns: [billing.cards.pan, "*_card"]
            detectors: [card, "regex:ACCT-[0-9]{6}"]
            style: keep-last
            keep_last: 2
        """,
    )
    (mask,) = load_policy(tmp_path).mask_rules()
    assert mask.columns == ("billing.cards.pan", "*_card")
    assert mask.detectors == ("card", "regex:ACCT-[0-9]{6}")
    assert (mask.style, mask.keep_last) == ("keep-last", 2)


def test_bad_table_patterns_and_protocols_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: r
            match:
              tables: ['"unterminated', a..b, w.x.y.z]
              protocol: postgress
            action: allow
        """,
    )
    assert problems_of(tmp_path) == [
        f"{path}:4: rule 'r': match.tables: '\"unterminated' has an unterminated double quote",
        f"{path}:4: rule 'r': match.tables: 'a..b' has an empty part"
        " (two dots in a row, or a dot at an end)",
        f"{path}:4: rule 'r': match.tables: 'w.x.y.z' has more than three parts"
        " (database.schema.name at most)",
        f"{path}:5: rule 'r': match.protocol: unknown protocol 'postgress' (known: postgres, ssh)",
    ]


def test_empty_lists_and_empty_files_are_problems(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "")
    rules = write(
        tmp_path, "rules.yaml", "rules:\n  - name: r\n    match: {kinds: []}\n    action: allow\n"
    )
    assert problems_of(tmp_path) == [
        f"{empty}:1: empty file (a policy file holds rules: or defaults:)",
        f"{rules}:3: rule 'r': match.kinds must not be an empty list",
    ]


def test_a_directory_without_policy_files_says_so(tmp_path: Path) -> None:
    write(tmp_path / "pack", "rules.yaml", "rules: []\n")
    assert problems_of(tmp_path) == [
        f"{tmp_path}: no policy files (*.yaml or *.yml); subdirectories are separate policies"
        " and are not read (pack)"
    ]
    assert problems_of(tmp_path / "missing")[0].startswith(f"{tmp_path / 'missing'}: cannot read")


def test_deadlines_and_approval_fields_are_parsed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - {name: a, action: approve, approvers: dba, deadline: 1h30m, min_approvals: 2}
          - {name: b, action: approve, approvers: [dba, sre], deadline: 45}
          - {name: c, action: approve, approvers: [dba]}
        """,
    )
    a, b, c = load_policy(tmp_path).rules
    assert (a.approvers, a.min_approvals, a.deadline_seconds) == (("dba",), 2, 5400.0)
    assert (b.approvers, b.deadline_seconds) == (("dba", "sre"), 45.0)
    assert (c.min_approvals, c.deadline_seconds) == (1, None)


def test_mask_vocabulary_is_the_masking_stage_vocabulary(tmp_path: Path) -> None:
    """A mask rule `hoopd policy check` accepts must be one the masking stage accepts."""
    rules = [
        f"  - {{name: m{index}, action: mask, detectors: ['{detector}'], style: {style}}}"
        for index, (detector, style) in enumerate(
            (detector, style)
            for detector in (*MASK_DETECTORS, "regex:[0-9]{4}")
            for style in MASK_STYLES
        )
    ]
    (tmp_path / "masks.yaml").write_text("rules:\n" + "\n".join(rules) + "\n")
    policy = load_policy(tmp_path)
    subject = Subject(Identity("a", (), "t"), "c", {}, "postgres")
    covering = covering_rules(policy, subject)
    assert len(covering) == len(rules)
    Masker(covering, bytes(32))  # raises ValueError for anything it does not accept
