"""The host command a session channel asks for, as the pipeline sees it (also how
``hoopd policy test`` and ``hoopd policy explain`` build one, so they judge what the
engine would)."""

from __future__ import annotations

import shlex

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
