"""Showing request text to people: nothing a requester wrote may disguise itself.

A command is chosen by the person asking for approval, so it could carry terminal escape
sequences, carriage returns or Unicode direction overrides that make a terminal or chat
show something other than what will run. Everything here that puts request text in front
of an approver passes it through :func:`shown` first.
"""

from __future__ import annotations

import time
import unicodedata
from typing import Final

# Control (Cc), format (Cf: direction overrides, zero-width characters), line and
# paragraph separators (Zl, Zp), surrogates and unassigned code points (Cs, Cn).
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn", "Co"})
_KEPT: Final = frozenset("\n\t")


def shown(text: str) -> str:
    """``text`` with every character that could hide or rearrange what is displayed
    written as an escape (``\\x1b``, ``\\u202e``); newlines and tabs are kept, and so is
    every visible character."""
    return "".join(
        ch if ch in _KEPT or unicodedata.category(ch) not in _HIDDEN_CATEGORIES else _escape(ch)
        for ch in text
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def one_line(text: str, width: int) -> tuple[str, bool]:
    """:func:`shown` text on one line (whitespace runs become one space), cut to
    ``width`` characters; the flag says whether anything was cut."""
    flat = " ".join(shown(text).split())
    if len(flat) <= width:
        return flat, False
    return flat[: width - 1] + "…", True


def utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def time_left(seconds: float) -> str:
    """``4m12s``, ``1h05m``, ``0s`` (never negative)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
