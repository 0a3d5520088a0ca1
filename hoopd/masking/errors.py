"""The one error masking raises while rows flow."""

from __future__ import annotations


class MaskingError(Exception):
    """A value cannot be masked, so the row holding it must not reach the client.

    Raised by :meth:`hoopd.masking.Masker.mask_row` when a column under a column rule
    is not text, when a value a rule has to read is not valid UTF-8, or when a row
    does not fit its plan. The message names the rule and the column, never the
    value: it may be shown to the client.
    """
