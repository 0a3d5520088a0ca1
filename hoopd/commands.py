"""Which modules contribute subcommands to ``hoopd``.

Each registrar takes the subparsers object, adds its subcommands and sets
``func`` on each to a callable ``(argparse.Namespace) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import Any

from hoopd import blast_radius_cli, demo, serve_cli
from hoopd.approvals import cli as approvals_cli
from hoopd.identity import cli as token_cli
from hoopd.identity import login_cli
from hoopd.policy import cli as policy_cli
from hoopd.recording import cli as recording_cli
from hoopd.tokens import cli as tokens_cli
from hoopd.trust import admin_verifier

Registrar = Callable[["argparse._SubParsersAction[Any]"], None]

REGISTRARS: tuple[Registrar, ...] = (
    serve_cli.register,
    demo.register,
    recording_cli.register,
    token_cli.register,
    policy_cli.register,
    approvals_cli.register,
    tokens_cli.register,
    login_cli.register,
    partial(blast_radius_cli.register, verifier_factory=admin_verifier),
)
