"""One authenticated client connection once its target is dialled: what every
channel of it shares (the pipeline's session, the upstream connection), and the
trio side of what channels ask for (admission, recording).

Guarantees: a failed recording or a fatal refusal sets :attr:`Link.failed`, and
the engine then ends the whole session; the data whose record failed is not
forwarded (the caller gets :class:`RecordingFailed`). Admissions run one at a time
(the pipeline's ``notify``/``client_gone`` hooks belong to the channel being
admitted), so a command waiting for approval holds up the admission of commands
on the connection's other channels, not their data.

Appends from several channels may run at once: each is one synchronous write of
the session's hash chain (``SessionRecorder.append_now``, called from asyncio's
side; both loops share the gateway's one thread), so records never interleave or
break the chain; only the wait for durability (power-loss mode) overlaps.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncssh
import trio

from hoopd.events import HostCommand
from hoopd.gateway import Gateway
from hoopd.masking import Masker
from hoopd.pipeline import Admission, CommandRefused, Refusal, Session
from hoopd.recording.flush import FlushBatch
from hoopd.recording.journal import RecorderError

from .bridge import to_asyncio

log = logging.getLogger("hoopd.ssh")

Records = Sequence[tuple[str, Mapping[str, Any]]]


async def _log_only(text: str) -> None:
    log.info("%s", text)


class RecordingFailed(Exception):
    """Recording (or the pipeline) failed: nothing more may be forwarded."""


@dataclass(eq=False)
class Link:
    gateway: Gateway
    session: Session
    upstream: asyncssh.SSHClientConnection
    #: Set when the session must end: recording failed or a refusal was fatal.
    failed: trio.Event = field(default_factory=trio.Event)
    #: Set when the gateway ends the session (revocation, expiry, shutdown, failed
    #: recording): channels then leave closing, and saying why, to the engine.
    ending: bool = False
    #: The target's side of every channel being relayed now.
    targets: set[asyncssh.SSHClientProcess[bytes]] = field(default_factory=set)
    #: The session's detector rules (docs/masking.md "Streams"): what the target
    #: prints on a session channel is masked before it is recorded and sent. None:
    #: no mask rule with detectors covers the session.
    masker: Masker | None = None
    #: Called for every chunk carried either way (the idle timeout's clock).
    activity: Callable[[], None] = lambda: None
    #: (trio) Says the pipeline's message about a command that has no channel of
    #: its own to say it on (a forward waiting for approval): by default, the log.
    announce: Callable[[str], Awaitable[None]] = field(default=_log_only)
    _admitting: trio.Lock = field(default_factory=trio.Lock)
    _channels: int = 0

    def next_channel(self) -> int:
        """The number of a new channel in this session's recording (1, 2, ...)."""
        self._channels += 1
        return self._channels

    def end(self) -> None:
        """The gateway ends the session: mark it, and stop what it runs on the target."""
        self.ending = True
        self.stop_targets()

    def stop_targets(self) -> None:
        """Ask the target to end what this session runs there (SIGTERM to each exec's
        or shell's process group; sshd refuses it for subsystems, which end when
        their channel closes). For sessions ended by the gateway: sshd leaves a
        command without a pty running when its channel merely closes."""
        for target in list(self.targets):
            with suppress(OSError, asyncssh.Error):
                target.channel.send_signal("TERM")

    def announcer(self, command: HostCommand) -> Callable[[str], Awaitable[None]]:
        """:attr:`announce`, naming ``command``: for the pipeline's messages about a
        command said on other channels (``hoopd: forward to HOST:PORT: ...``)."""

        async def announce(text: str) -> None:
            rest = text.removeprefix("hoopd: ")
            await self.announce(f"hoopd: {command.text}: {rest}")

        return announce

    # -- called from asyncio (the channel handlers) --------------------------------

    async def record(self, records: Records) -> None:
        """Append ``records``; returns once they are durable. Raises RecordingFailed.

        The write itself happens here, on asyncio's side: crossing into trio for
        every chunk of a bulk transfer cost more than the recording (it halved
        throughput); only power-loss mode's wait for the disk flush crosses."""
        self.activity()
        try:
            batch = self.session.recorder.append_now(records)
        except RecorderError:
            self.failed.set()
            raise RecordingFailed("session recording is unavailable") from None
        if batch is not None:
            await to_asyncio(self._wait_durable)(batch)

    async def admit(
        self,
        command: HostCommand,
        notify: Callable[[str], Awaitable[None]],
        client_gone: Callable[[], Awaitable[None]],
    ) -> Admission:
        """Judge and record ``command``: its number in the session and its refusal
        (None: go ahead). Raises RecordingFailed when it cannot be recorded or
        judged (it must not run)."""
        return await to_asyncio(self._admit)(command, notify, client_gone)

    # -- trio ----------------------------------------------------------------------

    async def _wait_durable(self, batch: FlushBatch) -> None:
        try:
            await self.session.recorder.wait_durable(batch)
        except RecorderError:
            self.failed.set()
            raise RecordingFailed("session recording is unavailable") from None

    async def _admit(
        self,
        command: HostCommand,
        notify: Callable[[str], Awaitable[None]],
        client_gone: Callable[[], Awaitable[None]],
    ) -> Admission:
        async with self._admitting:
            self.session.notify, self.session.client_gone = notify, client_gone
            try:
                [admission] = await self.gateway.pipeline.admit(self.session, [command])
            except CommandRefused as exc:
                if exc.fatal:
                    self.failed.set()
                    raise RecordingFailed(exc.message) from None
                return Admission(self.session.commands, Refusal(exc.message, None, exc.code))
            finally:
                self.session.notify = self.session.client_gone = None
        return admission
