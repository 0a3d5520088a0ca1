"""Agent forwarding (``ssh -A``): the client's agent offered to one session
channel's command on the target, judged first.

Order, per session channel of a client that asked for agent forwarding (after
the channel's own command is admitted): the pipeline admits
``HostCommand("agent-forward", "forward the client's agent to channel N")``
(scope ``admin``; only a rule naming ``agent-forward`` allows it, docs/policy.md)
-> refused: the command runs without an agent (the target's session is opened
without asking for one, so it has no ``SSH_AUTH_SOCK``), as OpenSSH's own sshd
does when it refuses agent forwarding; the refusal is in the ``statement``
record only -> allowed: the channel's session is opened on an upstream
connection of its own that asks the target for agent forwarding, pointed at a
socket only the gateway's user can reach (a private temporary directory), which
lives as long as the channel. Each agent connection the target opens is recorded
(``channel_open``, type ``agent``) and relayed to the client over an
``auth-agent@openssh.com`` channel; only its byte counts are recorded
(``channel_close``): agent messages can carry private keys (``ssh-add`` on the
target sends one to the client's agent), which a recording must not hold.

Why a connection of its own: asyncssh asks for agent forwarding on every session
of a connection or on none, and the target's sshd gives ``SSH_AUTH_SOCK`` to
every session that asked.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from hoopd.events import HostCommand

from .bridge import to_trio
from .forward import carry, record_refused
from .link import Link, RecordingFailed
from .process import ChannelProcess
from .upstream import dial

log = logging.getLogger("hoopd.ssh")

Notify = Callable[[str], Awaitable[None]]
"""(trio) Says something on the session channel's stderr."""


class AgentForward:
    """One session channel's agent: its socket, and the upstream connection that
    offers it to the target. :meth:`close` removes both."""

    def __init__(self, link: Link, conn: asyncssh.SSHServerConnection, number: int) -> None:
        self.link = link
        self.conn = conn
        self.number = number
        self.upstream: asyncssh.SSHClientConnection | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="hoopd-agent-"))  # 0700
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> asyncssh.SSHClientConnection:
        """(asyncio) Listen on the socket and dial the target with it as the
        agent. Raises TargetUnavailable (or OSError) when it cannot."""
        path = self._dir / "agent"
        self._server = await asyncio.start_unix_server(self._accept, str(path))
        link = self.link
        connection = next(
            c for c in link.gateway.config.connections if c.name == link.session.connection
        )
        login = str(link.upstream.get_extra_info("username"))
        timeout = link.gateway.config.connect_timeout_seconds
        self.upstream = await dial(connection, login, timeout, agent_forward_path=str(path))
        return self.upstream

    def close(self) -> None:
        """Close the upstream connection (the target's agent socket goes with it)
        and the gateway's socket, and remove its directory."""
        if self.upstream is not None:
            self.upstream.close()
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """(asyncio) One agent connection from the target: recorded, then relayed to
        the client's agent (byte counts only)."""
        link, number = self.link, self.link.next_channel()
        body = {
            "channel": number,
            "type": "agent",
            "command": f"agent connection for channel {self.number}",
            "session_channel": self.number,
        }
        try:
            await link.record([("channel_open", body)])
            try:
                client = await self.conn.open_agent_connection()
            except (asyncssh.Error, OSError) as exc:
                log.info("session %s: the client's agent did not answer: %s", _id(link), exc)
                await record_refused(link, number)
                writer.close()
                return
        except RecordingFailed:
            writer.close()
            return
        await carry(link, number, client, (reader, writer), record_data=False)


async def forward_agent(
    link: Link, process: ChannelProcess, number: int, notify: Notify
) -> AgentForward | None:
    """(asyncio) The agent for session channel ``number``, started, when its client
    asked for agent forwarding and the pipeline allows it; None otherwise.
    ``notify`` says on the channel that the agent waits for approval. Raises
    RecordingFailed (the engine ends the session) and TargetUnavailable."""
    conn = process.channel.get_connection()
    # asyncssh keeps the client's agent request per connection: OpenSSH asks on
    # every session channel it opens with -A.
    if not isinstance(conn, asyncssh.SSHServerConnection) or conn.get_agent_path() is None:
        return None
    command = HostCommand("agent-forward", f"forward the client's agent to channel {number}")
    _, refusal = await link.admit(command, notify, to_trio(process.channel.wait_closed))
    if refusal is not None:
        return None
    agent = AgentForward(link, conn, number)
    try:
        await agent.start()
    except BaseException:
        agent.close()
        raise
    return agent


def _id(link: Link) -> str:
    return link.session.session_id
