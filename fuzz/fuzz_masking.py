"""Coverage-guided fuzzing of response masking with atheris.

The input drives two things:

* a string (any code points, lone surrogates included) given to ``mask_text`` with
  every built-in detector on;
* a result of one to five columns (name, table known or not, text or not) and one
  row of values for it (NULL or bytes, UTF-8 or not) given to ``plan`` and
  ``mask_row`` under a column rule of each style and a detector rule.

Anything escaping other than ``MaskingError`` from ``mask_row`` is a bug, and so is
any of these broken invariants: ``mask_text`` output holds nothing the card, email,
us-ssn or iban detector would find on its own, and masking it again changes
nothing; ``mask_row`` keeps the row's length and its NULLs, leaves non-text values
alone, and refuses a row exactly when a non-text column under a column rule holds a
value or a value it must read is not UTF-8 (or, for a value searched by detectors,
when ``mask_text`` gives up on it as a whole: a glued chain of finds).

Run ``python fuzz/fuzz_masking.py -help=1`` for libFuzzer's options; see README.md.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from hoopd.masking import DETECTORS, Column, Masker, MaskingError, MaskRule

KEY = b"fuzz-key-0123456789abcdef"
CHECKED = ("card", "email", "us-ssn", "iban")
ALL = Masker([MaskRule("all", detectors=tuple(DETECTORS))], KEY)
SINGLE = {name: Masker([MaskRule(name, detectors=(name,))], KEY) for name in CHECKED}
ROWS = Masker(
    [
        MaskRule("emails", columns=("users.email",)),
        MaskRule("cards", columns=("*card*",), style="keep-last"),
        MaskRule("tokens", columns=("t?ken",), style="hmac"),
        MaskRule("found", detectors=tuple(DETECTORS)),
    ],
    KEY,
)
NAMES = ("id", "email", "card_no", "token", "note")
TABLES = (None, "public.users", "crm.orders")


def _check_text(text: str) -> None:
    masked, rules = ALL.mask_text(text)
    if rules != (["all"] if masked != text else []):
        raise AssertionError(f"rules {rules!r} for {text!r} -> {masked!r}")
    for name, masker in SINGLE.items():
        again, _ = masker.mask_text(masked)
        if again != masked:
            raise AssertionError(f"{name} still finds something in {masked!r} (from {text!r})")
    if ALL.mask_text(masked) != (masked, []):
        raise AssertionError(f"masking {masked!r} again changed it (from {text!r})")


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _unsettled(value: bytes | None) -> bool:
    """Whether the detectors cannot settle on ``value`` (a glued chain of finds):
    then ``mask_text`` gives a bare ``[redacted]`` and ``mask_row`` refuses."""
    if value is None or not _utf8(value):
        return False
    masked, rules = ROWS.mask_text(value.decode())
    return masked == "[redacted]" and bool(rules)


def _check_row(fdp: atheris.FuzzedDataProvider) -> None:
    columns = [
        Column(
            fdp.PickValueInList(list(NAMES)),
            fdp.PickValueInList(list(TABLES)),
            fdp.ConsumeBool(),
        )
        for _ in range(fdp.ConsumeIntInRange(1, 5))
    ]
    values: list[bytes | None] = [
        None if fdp.ConsumeBool() else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
        for _ in columns
    ]
    plan = ROWS.plan(columns)
    if plan is None:
        return
    # Rule 1 ("cards") is keep-last, which reads its values as text.
    reads = {index for index, rule in plan.whole if rule == 1} | set(plan.scanned)
    must_refuse = any(values[index] is not None for index, _ in plan.refused) or any(
        value is not None and not _utf8(value)
        for index, value in enumerate(values)
        if index in reads
    )
    may_refuse = must_refuse or any(
        _unsettled(value) for index, value in enumerate(values) if index in plan.scanned
    )
    try:
        masked, _ = ROWS.mask_row(plan, values)
    except MaskingError:
        if not may_refuse:
            raise
        return
    if must_refuse:
        raise AssertionError(f"{values!r} under {plan!r} was not refused")
    if [v is None for v in masked] != [v is None for v in values]:
        raise AssertionError(f"NULLs changed: {values!r} -> {masked!r}")
    for column, before, after in zip(columns, values, masked, strict=True):
        if not column.text and after != before:
            raise AssertionError(f"non-text {column!r} changed: {before!r} -> {after!r}")


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    _check_text(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 512)))
    _check_row(fdp)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
