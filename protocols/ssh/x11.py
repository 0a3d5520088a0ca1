"""X11 forwarding (``ssh -X``/``-Y``): the client's display offered to one session
channel's command on the target, judged first.

Order, per session channel whose client asked for X11 (after the channel's own
command is admitted): the pipeline admits ``HostCommand("x11", "forward X11 to
channel N")`` (scope ``admin``; only a rule naming ``x11`` allows it,
docs/policy.md) -> refused: the gateway's display for the channel is closed and
the target's session is opened without X11 (no ``DISPLAY``); the refusal is in
the ``statement`` record -> allowed: the target's session is opened asking for
X11 (a target that refuses it leaves the command running without, as OpenSSH
does). The target's X11 connections are relayed by asyncssh: to the gateway's
own display for the client (a loopback TCP port, ``localhost:10`` upwards, whose
cookie is the one the client gave, kept in ``<data_dir>/ssh/Xauthority``), and
from there over an ``x11`` channel to the client. They are not recorded one by
one, and their bytes are not recorded.
"""

from __future__ import annotations

from pathlib import Path

import asyncssh

from hoopd.events import HostCommand

from .agent import Notify
from .bridge import to_trio
from .link import Link
from .process import ChannelProcess


def xauthority_path(data_dir: Path) -> Path:
    """Where the cookies of the gateway's displays for clients are kept (asyncssh
    writes it, 0600 inside the gateway's private data directory)."""
    return data_dir / "ssh" / "Xauthority"


async def forward_x11(
    link: Link, process: ChannelProcess, number: int, notify: Notify
) -> str | None:
    """(asyncio) The gateway's display for session channel ``number``, when its
    client asked for X11 and the pipeline allows it; None otherwise. ``notify``
    says on the channel that it waits for approval. Raises RecordingFailed (the
    engine ends the session)."""
    channel = process.channel
    if not isinstance(channel, asyncssh.SSHServerChannel):
        return None
    display = channel.get_x11_display()
    if display is None:
        return None  # the client did not ask
    command = HostCommand("x11", f"forward X11 to channel {number}")
    _, refusal = await link.admit(command, notify, to_trio(channel.wait_closed))
    if refusal is not None:
        conn = channel.get_connection()
        if isinstance(conn, asyncssh.SSHServerConnection):
            conn.detach_x11_listener(channel)  # nothing may use the display now
        return None
    return display
