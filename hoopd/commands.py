"""Which modules contribute subcommands to ``hoopd``.

Each registrar takes the subparsers object, adds its subcommands and sets
``func`` on each to a callable ``(argparse.Namespace) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Registrar = Callable[["argparse._SubParsersAction[Any]"], None]

REGISTRARS: list[Registrar] = []
