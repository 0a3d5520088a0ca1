"""What a mask rule says and what a result column looks like: plain, immutable data.

:class:`hoopd.masking.Masker` validates rules when it is built (unknown detector,
bad pattern, bad regex, ...); these classes check nothing themselves, so policy code
can build them freely and learn about problems from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MaskStyle = Literal["redact", "keep-last", "hmac"]
MASK_STYLES: Final[tuple[MaskStyle, ...]] = ("redact", "keep-last", "hmac")


@dataclass(frozen=True, slots=True)
class MaskRule:
    """One masking rule.

    ``columns`` are patterns naming result columns whose whole value is masked:
    ``column``, ``table.column`` or ``schema.table.column``, each part a glob
    (``*`` any run of characters, ``?`` one), compared case-insensitively.
    ``detectors`` name content detectors (see :data:`hoopd.masking.DETECTORS`, or
    ``regex:<pattern>``) whose matches are masked inside every text value.
    ``style`` says how a masked value or match is replaced; ``keep_last`` is the
    number of trailing characters ``keep-last`` leaves visible.
    """

    name: str
    columns: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    style: MaskStyle = "redact"
    keep_last: int = 4


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a result, as the protocol describes it.

    ``name`` is the name or alias the client sees; ``table`` is ``"schema.table"``
    when the column comes straight from a table, else ``None`` (an expression);
    ``text`` says whether the value arrives as UTF-8 text (text format, or the
    binary format of a text-like type); ``source`` is the table column's own name
    when the protocol can tell it (an alias renames ``name``, not ``source``).
    """

    name: str
    table: str | None
    text: bool
    source: str | None = None
