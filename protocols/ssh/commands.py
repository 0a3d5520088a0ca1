"""The host command a session channel asks for, as the pipeline sees it (also how
``hoopd policy test`` and ``hoopd policy explain`` build one, so they judge what the
engine would)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from hoopd.events import HostCommand


def host_command(command: str | None, subsystem: str | None) -> HostCommand:
    """``exec`` (with argv split as a POSIX shell would; empty when it cannot be),
    ``subsystem`` (its name), or ``shell``."""
    if subsystem is not None:
        return HostCommand("subsystem", subsystem)
    if command is None:
        return HostCommand("shell", "shell")
    try:
        argv = tuple(shlex.split(command))
    except ValueError:
        argv = ()
    return HostCommand("exec", command, argv)


PASSED_ENV = re.compile(r"LANG|LANGUAGE|LC_[A-Z_]+")
"""Environment variables a client may set for its target session (``SendEnv``): the
locale, as OpenSSH's stock configuration accepts (``AcceptEnv LANG LC_*``). Nothing
else passes, so a client cannot reach the target's environment (``LD_PRELOAD``,
``PATH``, ...) through the gateway; the target's own ``AcceptEnv`` still decides."""


def passed_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of a client's environment that goes on to its target session."""
    return {name: value for name, value in env.items() if PASSED_ENV.fullmatch(name)}
