"""Waiting for a server's log to say something (polled, with a deadline)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable


def wait_for_match(
    read: Callable[[], str], pattern: str, *, what: str, timeout: float = 10.0, flags: int = 0
) -> re.Match[str]:
    """Poll ``read()`` until ``pattern`` matches it; AssertionError with the text's end
    (``what`` names the log in the message) when the deadline passes first."""
    regex = re.compile(pattern, flags)
    deadline = time.monotonic() + timeout
    while True:
        text = read()
        found = regex.search(text)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} never matched {pattern!r} within {timeout}s; log since mark:\n"
                + text[-4000:]
            )
        time.sleep(0.05)
