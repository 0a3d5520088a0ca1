"""One session channel: its command through the pipeline, then the relay to a
channel of the same kind on the target.

Order, per channel: ``channel_open`` record -> the pipeline admits the command
(judged, recorded; may wait for approval) -> a refused command gets ``hoopd:
<message>`` on stderr and exit status 1, and never reaches the target -> else the
target's channel opens (same command, subsystem, pty) and :mod:`.relay` carries
data both ways (the ``sftp`` subsystem through :mod:`.sftp_relay`, which judges
each file operation) until the target's side exits; its exit status or signal is
recorded and passed back. The client's connection stays usable either way.

When the client forwards its agent or asks for X11, ``agent-forward`` and
``x11`` are judged after the command is admitted (:mod:`.agent`, :mod:`.x11`):
allowed, the target's session gets the agent (on an upstream connection of the
channel's own) or the display; refused, it runs without.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

import asyncssh

from hoopd.events import HostCommand

from .agent import AgentForward, forward_agent
from .bridge import to_trio
from .commands import host_command, passed_env
from .link import Link, RecordingFailed
from .process import ChannelProcess
from .relay import relay
from .sftp_relay import SftpRelay
from .upstream import TargetUnavailable
from .x11 import forward_x11, xauthority_path

log = logging.getLogger("hoopd.ssh")

REFUSED_STATUS = 1


async def serve_channel(link: Link, process: ChannelProcess) -> None:
    """Serve one channel to its end; never raises (the channel is closed)."""
    number = link.next_channel()
    command = host_command(process.command, process.subsystem)
    agent: AgentForward | None = None
    try:
        env = passed_env(process.env)
        await link.record([("channel_open", _open_record(number, command, process, env))])

        async def notify(text: str) -> None:
            await to_trio(_say)(process, text)

        _, refusal = await link.admit(command, notify, to_trio(process.channel.wait_closed))
        if refusal is not None:
            await _refuse(link, number, process, refusal.message)
            return
        try:
            agent = await forward_agent(link, process, number, notify)
        except TargetUnavailable as exc:
            await _refuse(link, number, process, exc.message)
            return
        display = await forward_x11(link, process, number, notify)
        upstream = link.upstream if agent is None else agent.upstream
        assert upstream is not None
        try:
            target = await upstream.create_process(
                command=process.command,
                subsystem=process.subsystem,
                env=env,
                term_type=process.term_type,
                term_size=process.term_size,
                term_modes=process.term_modes,
                # As OpenSSH: a target that refuses X11 still runs the command.
                x11_forwarding="ignore_failure" if display is not None else False,
                x11_display=display,
                x11_auth_path=str(xauthority_path(link.gateway.config.data_dir)),
                encoding=None,
            )
        except (asyncssh.Error, OSError) as exc:
            reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
            await _refuse(link, number, process, f"the target refused the channel: {reason}")
            return
        # SFTP is relayed packet by packet, each file operation judged on its own.
        pumps = (
            SftpRelay(link, number, process, target).pumps()
            if process.subsystem == "sftp"
            else None
        )
        await relay(link, number, process, target, pumps)
        if link.ending:
            await _closed_by_engine(process)
    except RecordingFailed:
        # Nothing more is forwarded; the engine ends the whole session.
        await _closed_by_engine(process)
    except Exception:
        log.exception("session %s: channel %d failed", link.session.session_id, number)
        process.close()
    finally:
        if agent is not None:
            agent.close()


async def _closed_by_engine(process: ChannelProcess) -> None:
    """Keep the channel open (and listed as open) until the engine, ending the
    session, has said why on it and closed it."""
    with suppress(OSError, asyncssh.Error):
        await process.channel.wait_closed()


def _open_record(
    number: int, command: HostCommand, process: ChannelProcess, env: dict[str, str]
) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": number, "type": command.kind, "command": command.text}
    if env:
        body["env"] = env
    if process.term_type is not None:
        cols, rows, _, _ = process.term_size
        body["pty"] = {"term": process.term_type, "cols": cols, "rows": rows}
    return body


async def _say(process: ChannelProcess, text: str) -> None:
    """The pipeline's message (already ``hoopd: ...``) on the channel's stderr, now."""
    with suppress(OSError, asyncssh.Error):
        process.stderr.write(_eol(process, text))
        await process.stderr.drain()


def say(process: ChannelProcess, text: str) -> None:
    """Queue ``hoopd: text`` and a newline on the channel's stderr (best effort)."""
    with suppress(OSError, asyncssh.Error):
        process.stderr.write(_line(process, text))


def tell(process: ChannelProcess, text: str) -> None:
    """Queue the pipeline's message (already ``hoopd: ...``) and a newline on the
    channel's stderr (best effort)."""
    with suppress(OSError, asyncssh.Error):
        process.stderr.write(_eol(process, text))


async def _refuse(link: Link, number: int, process: ChannelProcess, message: str) -> None:
    line = _line(process, message)
    await link.record(
        [
            ("stderr", {"channel": number, "data": line}),
            ("exit", {"channel": number, "status": REFUSED_STATUS, "refused": True}),
        ]
    )
    with suppress(OSError, asyncssh.Error):
        process.stderr.write(line)
        await process.stderr.drain()
    process.exit(REFUSED_STATUS)


def _line(process: ChannelProcess, text: str) -> bytes:
    return _eol(process, f"hoopd: {text}")


def _eol(process: ChannelProcess, text: str) -> bytes:
    # A terminal in raw mode (a pty) moves down without returning on a bare newline.
    return (text + ("\r\n" if process.term_type else "\n")).encode()
