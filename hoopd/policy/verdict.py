"""What a policy decides about one command, and what it is told about who sent it.

These two types are the whole interface between the policy engine and the gateway's
pipeline: the pipeline builds a :class:`Subject` once per session and asks
:meth:`hoopd.policy.Policy.judge` for a :class:`Verdict` per statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hoopd.identity.base import Identity

Action = Literal["allow", "deny", "approve"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one command.

    ``rule`` names the deciding rule, or is ``None`` when no rule decided (the
    connection's default applied, the text was unparseable, or the policy could not
    be evaluated). ``message`` is set for every ``deny`` and is safe to show the
    client; for ``approve`` it is the rule's optional explanation. ``approvers``,
    ``min_approvals`` and ``deadline_seconds`` describe the approval an ``approve``
    verdict asks for. ``matched`` names every rule whose ``match`` held, in policy
    order (files sorted by name, rules in file order), whether it decided or not.
    """

    action: Action
    rule: str | None
    message: str | None
    approvers: tuple[str, ...] = ()
    min_approvals: int = 1
    deadline_seconds: float | None = None
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Subject:
    """Who sends commands, and where to: everything a policy knows besides the command.

    ``labels`` are the connection's labels from the gateway configuration.
    """

    identity: Identity
    connection: str
    # A mapping has no hash; equality still compares it.
    labels: Mapping[str, str] = field(hash=False)
    protocol: str
