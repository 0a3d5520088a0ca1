"""Keeping the pipeline's policy in step with the policy directory.

At start the directory must load (a broken policy stops the start, naming every
problem). Afterwards it is reloaded on SIGHUP and when its files change (checked
every :data:`POLL_SECONDS`); a reload that fails leaves the policy in force,
logs every problem at ERROR, and is retried only when the files change again.
Live sessions are never dropped: each command is judged by the policy in force
when it arrives.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

import trio

from hoopd.pipeline import Pipeline
from hoopd.policy.errors import PolicyError
from hoopd.policy.loader import load_policy

log = logging.getLogger("hoopd.policy")

POLL_SECONDS: Final = 2.0

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """Path, size and modification time of every file under ``directory``."""
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed while walking: the next look sees the change
            found.append((path, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


class PolicyReloader:
    """Loads ``directory`` into ``pipeline.policy`` now, and again when asked or changed."""

    def __init__(self, directory: Path, pipeline: Pipeline) -> None:
        self.directory = directory
        self.pipeline = pipeline
        self._seen = fingerprint(directory)
        # Raises PolicyError: a gateway must not start with a policy it cannot read.
        pipeline.policy = load_policy(directory)
        log.info("policy loaded from %s", directory)

    def reload(self, why: str) -> bool:
        """Load the directory again; True if the new policy is now in force."""
        self._seen = fingerprint(self.directory)
        try:
            policy = load_policy(self.directory)
        except PolicyError as exc:
            log.error(
                "%s: the policy in %s did not load; the previous policy stays in force:\n%s",
                why,
                self.directory,
                "\n".join(exc.problems),
            )
            return False
        self.pipeline.policy = policy
        log.warning("%s: policy reloaded from %s", why, self.directory)
        return True

    async def watch(self) -> None:
        """Reload whenever the files change; runs until cancelled."""
        while True:
            await trio.sleep(POLL_SECONDS)
            if fingerprint(self.directory) != self._seen:
                self.reload("policy files changed")
