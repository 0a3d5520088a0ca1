"""Masking of sensitive values in results, independent of any protocol.

A :class:`Masker` is built from :class:`MaskRule` objects. For each result shape
(a list of :class:`Column`) it makes a :class:`MaskPlan`, or ``None`` when the rules
cannot touch that result; :meth:`Masker.mask_row` then masks each row, and
:meth:`Masker.mask_text` masks free text (COPY lines, error messages). See
docs/masking.md.
"""

from hoopd.masking.builtin import DETECTORS
from hoopd.masking.detector import REGEX_PREFIX
from hoopd.masking.errors import MaskingError
from hoopd.masking.masker import Masker, MaskPlan
from hoopd.masking.rules import MASK_STYLES, Column, MaskRule, MaskStyle
from hoopd.masking.stream import StreamMasker

__all__ = [
    "DETECTORS",
    "MASK_STYLES",
    "REGEX_PREFIX",
    "Column",
    "MaskPlan",
    "MaskRule",
    "MaskStyle",
    "Masker",
    "MaskingError",
    "StreamMasker",
]
