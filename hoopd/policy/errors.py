"""The one error a policy directory can raise while loading."""

from __future__ import annotations

from collections.abc import Sequence


class PolicyError(Exception):
    """A policy directory cannot be used.

    ``problems`` lists every problem found, each as ``file:line: problem`` (problems
    about the directory itself are ``directory: problem``); ``str()`` joins them
    with newlines.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))
