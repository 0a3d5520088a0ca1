"""Properties of masking, checked with Hypothesis.

Run longer with ``HYPOTHESIS_PROFILE=deep`` (see conftest.py).
"""

from __future__ import annotations

import re
import string

from hypothesis import given, note
from hypothesis import strategies as st

from hoopd.masking import DETECTORS, Column, Masker, MaskingError, MaskRule
from hoopd.masking.checks import IBAN_COUNTRIES, luhn_valid
from hoopd.masking.prefilter import Prefilter

KEY = b"0123456789abcdef"
CHECKED = ("card", "email", "us-ssn", "iban")
ALL = Masker([MaskRule("all", detectors=tuple(DETECTORS))], KEY)
SINGLE = {name: Masker([MaskRule(name, detectors=(name,))], KEY) for name in DETECTORS}

# -- valid values of each kind


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    body = draw(st.sampled_from("23456")) + draw(
        st.text(string.digits, min_size=length - 2, max_size=length - 2)
    )
    check = next(d for d in string.digits if luhn_valid(body + d))
    number = body + check
    separator = draw(st.sampled_from(["", " ", "-"]))
    if separator and length == 16:
        return separator.join(number[i : i + 4] for i in range(0, 16, 4))
    return number


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_COUNTRIES)))
    bban = draw(st.text(string.digits + string.ascii_uppercase, min_size=11, max_size=30))
    numeric = (bban + country + "00").translate(
        {ord(c): str(10 + i) for i, c in enumerate(string.ascii_uppercase)}
    )
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if draw(st.booleans()):
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


_LOCAL = string.ascii_letters + string.digits + "._%+-"
_LABEL = string.ascii_lowercase + string.digits


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.text(_LOCAL, min_size=1, max_size=20))
    labels = draw(st.lists(st.text(_LABEL, min_size=1, max_size=10), min_size=1, max_size=3))
    tld = draw(st.text(string.ascii_lowercase, min_size=2, max_size=6))
    return f"{local}@{'.'.join(labels)}.{tld}"


PII = st.one_of(cards(), ssns(), ibans(), emails(), st.emails())

# Text with the characters detectors care about, so that look-alikes are common.
NOISY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("0123456789 -.@+()_\tABCDEeyJIKSaz"), st.characters(codec="utf-8")
    ),
    max_size=200,
)


def finds(text: str) -> dict[str, str]:
    """What each checked detector masks in ``text`` on its own."""
    return {name: masked for name in CHECKED if (masked := SINGLE[name].mask_text(text)[0]) != text}


@given(NOISY_TEXT)
def test_mask_text_never_raises_and_leaves_nothing_to_find(text: str) -> None:
    masked, rules = ALL.mask_text(text)
    note(f"masked: {masked!r}")
    assert finds(masked) == {}
    assert rules == (["all"] if masked != text else [])


@given(st.lists(st.one_of(PII, NOISY_TEXT), max_size=6))
def test_values_found_alone_do_not_survive_in_text(parts: list[str]) -> None:
    text = "\n".join(parts)
    masked, _ = ALL.mask_text(text)
    note(f"masked: {masked!r}")
    for part in parts:
        if any(SINGLE[name].mask_text(part)[0] == f"[redacted:{name}]" for name in CHECKED):
            assert part not in masked
    assert finds(masked) == {}


@given(PII)
def test_generated_values_are_found(value: str) -> None:
    assert re.fullmatch(r"\[redacted:[a-z-]+\]", ALL.mask_text(value)[0])


@given(st.one_of(NOISY_TEXT, PII, st.lists(st.one_of(PII, NOISY_TEXT)).map("".join)))
def test_prefilter_never_skips_a_detector_that_would_find_something(text: str) -> None:
    data = text.encode()
    for name, detector in DETECTORS.items():
        if any(True for _ in detector.find(text)):
            assert Prefilter([(detector, name)]).select(data) == [name]


@given(st.text(max_size=100))
def test_mask_text_is_stable(text: str) -> None:
    once, _ = ALL.mask_text(text)
    assert ALL.mask_text(once) == (once, [])


# -- rows

COLUMNS = st.lists(
    st.builds(
        Column,
        name=st.sampled_from(["id", "email", "note", "Card_Number", "total"]),
        table=st.sampled_from([None, "public.users", "crm.orders"]),
        text=st.booleans(),
    ),
    max_size=6,
)
ROW_MASKER = Masker(
    [
        MaskRule("emails", columns=("users.email",)),
        MaskRule("cards", columns=("*card*",), style="keep-last"),
        MaskRule("found", detectors=tuple(DETECTORS), style="hmac"),
    ],
    KEY,
)


@given(COLUMNS, st.data())
def test_mask_row_keeps_the_row_shape(columns: list[Column], data: st.DataObject) -> None:
    plan = ROW_MASKER.plan(columns)
    if plan is None:
        return
    text_value = st.one_of(PII, NOISY_TEXT).map(str.encode)
    values: list[bytes | None] = [
        data.draw(st.none() | (text_value if c.text else st.binary(max_size=8))) for c in columns
    ]
    # The values are valid UTF-8: only a non-NULL value in a non-text column under a
    # column rule, or a glued chain of finds the detectors cannot settle (which
    # mask_text turns into a bare "[redacted]"), can refuse the row.
    refused = any(values[index] is not None for index, _ in plan.refused)
    unsettled = any(
        ROW_MASKER.mask_text(value.decode()) == ("[redacted]", ["found"])
        for index, value in enumerate(values)
        if index in plan.scanned and value is not None
    )
    try:
        masked, rules = ROW_MASKER.mask_row(plan, values)
    except MaskingError:
        assert refused or unsettled
        return
    assert not refused
    assert len(masked) == len(values)
    assert [v is None for v in masked] == [v is None for v in values]
    assert set(rules) <= {"emails", "cards", "found"}
    for column, before, after in zip(columns, values, masked, strict=True):
        if not column.text:
            assert after == before


@given(st.lists(st.binary(max_size=30) | st.none(), min_size=1, max_size=5))
def test_mask_row_raises_only_masking_error(values: list[bytes | None]) -> None:
    columns = [Column(f"c{i}", None, i % 2 == 0) for i in range(len(values))]
    masker = Masker(
        [MaskRule("c1", columns=("c1",)), MaskRule("found", detectors=tuple(DETECTORS))], KEY
    )
    plan = masker.plan(columns)
    assert plan is not None
    try:
        masked, _ = masker.mask_row(plan, values)
    except MaskingError:
        return
    assert [v is None for v in masked] == [v is None for v in values]


@given(
    st.lists(
        st.builds(
            Column,
            name=st.text("xyz", max_size=5),
            table=st.none() | st.text("xyz.", max_size=7),
            text=st.booleans(),
        ),
        max_size=6,
    )
)
def test_no_plan_when_no_rule_matches(columns: list[Column]) -> None:
    column_rules = Masker([MaskRule("r", columns=("email", "users.ssn", "a*.b*.c*"))], KEY)
    assert column_rules.plan(columns) is None
    detectors_only = Masker([MaskRule("d", detectors=("email",))], KEY)
    assert (detectors_only.plan(columns) is None) == (not any(c.text for c in columns))
