"""The Masker: building it from rules, planning a result, masking rows, failing closed."""

from __future__ import annotations

import pytest

from hoopd.masking import Column, Masker, MaskingError, MaskRule

KEY = b"0123456789abcdef"

USERS = [
    Column("id", "public.users", False),
    Column("email", "public.users", True),
    Column("note", "public.users", True),
    Column("created", "public.users", True),
    Column("avatar", "public.users", False),
]


def masker(*rules: MaskRule) -> Masker:
    return Masker(rules, KEY)


EMAILS = MaskRule("emails", columns=("users.email",))
FIND_EMAILS = MaskRule("find-emails", detectors=("email",))


def test_column_rule_and_detector_rule_together() -> None:
    m = masker(EMAILS, FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    row, rules = m.mask_row(
        plan,
        [
            b"\x00\x00\x00\x07",
            b"alice@example.com",
            b"cc bob@example.org",
            b"2024-01-15",
            b"\x89PNG",
        ],
    )
    assert row == [
        b"\x00\x00\x00\x07",
        b"[redacted]",
        b"cc [redacted:email]",
        b"2024-01-15",
        b"\x89PNG",
    ]
    assert rules == ["emails", "find-emails"]


def test_rule_names_only_for_rules_that_changed_something() -> None:
    m = masker(EMAILS, FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    assert m.mask_row(plan, [None, b"a@example.com", b"nothing here", None, None])[1] == ["emails"]
    assert m.mask_row(plan, [None, None, b"x@example.com", None, None])[1] == ["find-emails"]
    assert m.mask_row(plan, [None, None, b"plain", b"text", None]) == (
        [None, None, b"plain", b"text", None],
        [],
    )


def test_each_rule_named_once_in_rule_order() -> None:
    m = masker(MaskRule("a", detectors=("email",)), MaskRule("b", detectors=("card",)))
    plan = m.plan([Column("x", None, True), Column("y", None, True)])
    assert plan is not None
    _, rules = m.mask_row(plan, [b"4111111111111111 a@example.com", b"b@example.com"])
    assert rules == ["a", "b"]


def test_nulls_stay_null() -> None:
    m = masker(EMAILS, FIND_EMAILS, MaskRule("ids", columns=("id",)))
    plan = m.plan(USERS)
    assert plan is not None
    assert m.mask_row(plan, [None] * 5) == ([None] * 5, [])


def test_detectors_leave_non_text_columns_alone() -> None:
    # Binary values of non-text types cannot hold text; they are not searched.
    m = masker(FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    row, _ = m.mask_row(plan, [b"a@example.com", None, None, None, b"b@example.com"])
    assert row == [b"a@example.com", None, None, None, b"b@example.com"]


def test_column_rule_masks_the_value_before_any_detector_sees_it() -> None:
    m = masker(MaskRule("notes", columns=("note",), style="keep-last"), FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    row, rules = m.mask_row(plan, [None, None, b"mail a@example.com", None, None])
    assert row[2] == b"**************.com"
    assert rules == ["notes"]


# -- plans


def test_no_plan_when_no_rule_can_touch_the_result() -> None:
    assert masker(EMAILS).plan([Column("id", "public.users", False)]) is None
    assert masker(EMAILS).plan([Column("email", "public.contacts", True)]) is None
    # Detectors only read text.
    assert masker(FIND_EMAILS).plan([Column("id", "public.users", False)]) is None
    assert masker(EMAILS).plan([]) is None


def test_plan_when_a_detector_can_read_a_text_column() -> None:
    plan = masker(FIND_EMAILS).plan([Column("n", None, True), Column("id", None, False)])
    assert plan is not None
    assert plan.scanned == (0,)


def test_plans_are_reused_for_the_same_columns() -> None:
    m = masker(EMAILS)
    assert m.plan(USERS) is m.plan(list(USERS))


def test_plan_describes_each_column() -> None:
    m = masker(MaskRule("ids", columns=("id",)), EMAILS, FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    assert plan.whole == ((1, 1),)
    assert plan.refused == ((0, 0),)
    assert plan.scanned == (2, 3)


# -- failing closed


def test_non_text_column_under_a_column_rule_refuses_the_row() -> None:
    m = masker(MaskRule("ids", columns=("users.id",)))
    plan = m.plan(USERS)
    assert plan is not None
    with pytest.raises(MaskingError, match="'id' is under mask rule 'ids' but is not text"):
        m.mask_row(plan, [b"\x00\x00\x00\x07", None, None, None, None])
    # A NULL there reveals nothing the masked row would not.
    assert m.mask_row(plan, [None] * 5) == ([None] * 5, [])


def test_invalid_utf8_under_a_detector_rule_refuses_the_row() -> None:
    m = masker(FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    # Latin-1 text: no detector candidate in it, but it is still refused, since
    # text in another encoding could hide what the detectors look for.
    with pytest.raises(MaskingError, match="'note' is not valid UTF-8"):
        m.mask_row(plan, [None, None, "café".encode("latin-1"), None, None])
    with pytest.raises(MaskingError, match="'note' is not valid UTF-8"):
        m.mask_row(plan, [None, None, b"a@example.com \xff", None, None])


def test_invalid_utf8_under_keep_last_refuses_the_row() -> None:
    m = masker(MaskRule("emails", columns=("email",), style="keep-last"))
    plan = m.plan(USERS)
    assert plan is not None
    with pytest.raises(MaskingError, match="mask rule 'emails' cannot read it"):
        m.mask_row(plan, [None, b"\xff\xfe", None, None, None])


def test_redact_does_not_need_to_read_the_value() -> None:
    m = masker(EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    assert m.mask_row(plan, [None, b"\xff", None, None, None])[0][1] == b"[redacted]"


def test_glued_chain_that_does_not_settle_refuses_the_row() -> None:
    m = masker(MaskRule("phones", detectors=("phone",)))
    plan = m.plan(USERS)
    assert plan is not None
    with pytest.raises(MaskingError, match="'note' holds finds glued together"):
        m.mask_row(plan, [None, None, b"+14155552671" * 20, None, None])


def test_row_that_does_not_fit_the_plan() -> None:
    m = masker(EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    with pytest.raises(MaskingError, match="a row of 2 values does not fit"):
        m.mask_row(plan, [None, b"x"])
    other = masker(EMAILS)
    with pytest.raises(MaskingError, match="another Masker"):
        other.mask_row(plan, [None] * 5)


def test_error_messages_never_contain_the_value() -> None:
    m = masker(FIND_EMAILS)
    plan = m.plan(USERS)
    assert plan is not None
    with pytest.raises(MaskingError) as caught:
        m.mask_row(plan, [None, None, b"secret@example.com \xff", None, None])
    assert "secret" not in str(caught.value)


# -- free text


def test_mask_text_applies_detectors_only() -> None:
    m = masker(EMAILS, FIND_EMAILS)
    assert m.mask_text("email alice@example.com") == ("email [redacted:email]", ["find-emails"])
    assert masker(EMAILS).mask_text("alice@example.com") == ("alice@example.com", [])


def test_mask_text_accepts_any_string() -> None:
    m = masker(FIND_EMAILS)
    assert m.mask_text("\ud800 a@example.com")[0] == "\ud800 [redacted:email]"


# -- building


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (MaskRule("r", detectors=("emails",)), "mask rule 'r': unknown detector 'emails'"),
        (MaskRule("r", detectors=("regex:(",)), "mask rule 'r': detector 'regex:\\(' is not a"),
        (MaskRule("r", detectors=("regex:",)), "mask rule 'r': detector 'regex:' has an empty"),
        (MaskRule("r", columns=("c",), style="blur"), "mask rule 'r': unknown style 'blur'"),  # type: ignore[arg-type]
        (MaskRule("r", columns=("c",), keep_last=-1), "keep_last must not be negative"),
        (MaskRule("r", columns=("c",), keep_last=True), "keep_last must be an integer"),
        (MaskRule("r"), "mask rule 'r': names neither columns nor detectors"),
        (MaskRule("r", columns="email"), "must be sequences of strings"),  # type: ignore[arg-type]
    ],
)
def test_unusable_rules_are_refused_with_their_name(rule: MaskRule, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        masker(rule)


def test_unknown_detector_error_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: email, card, us-ssn, iban, phone"):
        masker(MaskRule("r", detectors=("ssn",)))


def test_detector_named_by_two_rules_belongs_to_the_first() -> None:
    m = masker(
        MaskRule("first", detectors=("email",), style="keep-last"),
        MaskRule("second", detectors=("email", "card")),
    )
    masked, rules = m.mask_text("a@example.com 4111111111111111")
    assert masked == "*********.com [redacted:card]"
    assert rules == ["first", "second"]
