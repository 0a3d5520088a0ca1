"""Reading a server's log from a mark, and waiting for it to say something."""

from __future__ import annotations

import re
import time
from pathlib import Path


class WatchedLog:
    """For a test server whose log is the file ``logfile``; ``log_name`` names it in
    failure messages."""

    logfile: Path
    log_name = "server log"

    def log_mark(self) -> int:
        """The current end of the log; pass it to :meth:`log_text` as ``since``."""
        try:
            return self.logfile.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.logfile, "rb") as log:
                log.seek(since)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(
        self, pattern: str, *, since: int = 0, timeout: float = 10.0, flags: int = 0
    ) -> re.Match[str]:
        """Poll the log for a regex until it matches; AssertionError with the log's
        end when the deadline passes first."""
        regex = re.compile(pattern, flags)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(since)
            found = regex.search(text)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.log_name} never matched {pattern!r} within {timeout}s;"
                    " log since mark:\n" + text[-4000:]
                )
            time.sleep(0.05)
