"""An ``sftp`` subsystem channel relayed packet by packet, each operation judged.

Guarantees, on top of :mod:`.relay`'s (record before forwarding, flow control):

- both directions are framed by :class:`.sftp_wire.SftpCodec`; only whole packets,
  in their original bytes, are forwarded, and each write to the client is one
  whole packet run, so the gateway's own answers never land inside another packet;
- a client packet that carries a command (:meth:`.sftp_ops.SftpOperations.command_for`)
  passes ``Link.admit`` (scope, policy, approval; its ``statement`` record) before it
  is forwarded; a refused one never reaches the target, and the client gets
  ``STATUS FX_PERMISSION_DENIED "hoopd: <message>"`` for its request id, recorded
  as ``stdout`` first; the SFTP session goes on;
- the target's answer to each admitted operation is recorded as a ``result``
  (``command``: the operation's number; ``tag`` ``ok``/``handle``, or ``error``
  with the SFTP status ``code`` and ``message``), before the client sees it;
- if an admission cannot be recorded or judged, the packet is not forwarded
  (``RecordingFailed``: the engine ends the session);
- a malformed packet from either side ends this channel (logged, and said on its
  stderr), never the connection or the gateway;
- the paths an operation is judged on are where the target resolves them
  (:mod:`.sftp_paths`); when the target cannot say, the operation is refused
  (``FX_PERMISSION_DENIED``), never judged on the path as written.

Bytes are recorded once, as ``stdin``/``stdout`` records like any channel's; the
decoded operations are the ``statement`` records, not a second copy of the data.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from contextlib import suppress
from typing import Any

import asyncssh
from asyncssh.misc import SoftEOFReceived

from hoopd.codec import ProtocolError
from hoopd.events import HostCommand

from . import sftp_wire as w
from .bridge import to_trio
from .link import Link, RecordingFailed
from .process import ChannelProcess
from .relay import CHUNK, CONTROL, Pump
from .sftp_ops import SftpOperations
from .sftp_paths import PathResolver, PathsUnknown

log = logging.getLogger("hoopd.ssh")

Record = tuple[str, dict[str, Any]]


class SftpRelay:
    """The two pumps of one SFTP channel and the state they share."""

    def __init__(
        self,
        link: Link,
        number: int,
        process: ChannelProcess,
        target: asyncssh.SSHClientProcess[bytes],
        paths: PathResolver | None = None,
    ) -> None:
        self.link, self.number, self.process, self.target = link, number, process, target
        self.operations = SftpOperations()
        #: Where paths point on the target (by default, asked of its sftp-server).
        self.paths = paths if paths is not None else PathResolver(link.upstream)
        self._requests = w.SftpCodec()
        self._answers = w.SftpCodec()
        #: Request id -> the number of the admitted operation it carries.
        self._admitted: dict[int, int] = {}

    def pumps(self) -> tuple[Pump, Pump]:
        """(target to client, client to target), for :func:`.relay.relay`."""
        return self._answers_pump, self._requests_pump

    # -- client to target ----------------------------------------------------------

    async def _requests_pump(self) -> None:
        try:
            await self._requests_loop()
        except ProtocolError as exc:
            await self._broken("client", exc)
        except (asyncssh.Error, OSError):
            self.target.close()  # one side is gone; closing ends the relay
        except RecordingFailed:
            raise  # nothing more is forwarded; the engine ends the session
        except Exception:
            # Whatever failed, the request it was carrying is not forwarded.
            log.exception(
                "session %s: SFTP channel %d failed", self.link.session.session_id, self.number
            )
            self.process.close()
            self.target.close()
        finally:
            self.paths.close()

    async def _requests_loop(self) -> None:
        while True:
            try:
                data = await self.process.stdin.read(CHUNK)
            except (*CONTROL, SoftEOFReceived):
                continue  # signals and window changes mean nothing to SFTP
            if not data:
                with suppress(OSError, asyncssh.Error):
                    self.target.stdin.write_eof()
                return
            self._requests.feed(data)
            # A bad packet after good ones is raised by the next call: the good
            # ones are carried first.
            while packets := self._requests.packets():
                await self._carry_requests(packets)

    async def _carry_requests(self, packets: list[w.Packet]) -> None:
        batch: list[bytes] = []
        for packet in packets:
            unsupported = self.operations.unsupported(packet)
            command = None if unsupported else self.operations.command_for(packet)
            if unsupported or command is not None:
                await self._to_target(batch)  # what came before goes first, in order
                batch = []
            if unsupported:
                await self._answer(packet, w.FX_OP_UNSUPPORTED, "hoopd: unsupported extension")
                continue
            if command is not None:
                command = await self._resolved(packet, command)
                if command is None or not await self._admit(packet, command):
                    continue
            self.operations.forwarded(packet, command.paths if command else ())
            batch.append(packet.raw)
        await self._to_target(batch)

    async def _resolved(self, packet: w.Packet, command: HostCommand) -> HostCommand | None:
        """``command`` with its paths where the target resolves them; None (answered
        here: refused) when the target cannot say."""
        if isinstance(packet, w.HandleRequest):
            return command  # the path its handle was opened with: already resolved
        paths = list(command.paths)
        if isinstance(packet, w.TwoPathRequest) and packet.type == w.SYMLINK:
            # OpenSSH's sftp-server (the target) takes (link target, link path), the
            # reverse of the draft; a relative link target is relative to the
            # link's directory, not to the login's home.
            target, link_path = paths
            if not target.startswith("/"):
                paths[0] = posixpath.join(posixpath.dirname(link_path) or ".", target)
        try:
            resolved = tuple([await self.paths.resolve(path) for path in paths])
        except PathsUnknown as exc:
            log.warning("session %s: SFTP path not resolved: %s", self.link.session.session_id, exc)
            message = "hoopd: the target cannot resolve this path; refused"
            await self._answer(packet, w.FX_PERMISSION_DENIED, message)
            return None
        return dataclasses.replace(command, paths=resolved)

    async def _admit(self, packet: w.Packet, command: HostCommand) -> bool:
        """Whether ``packet`` may go on; a refusal is answered here."""
        # The pipeline calls these from trio while it holds the operation.
        number, refusal = await self.link.admit(
            command, to_trio(self._say), to_trio(self.process.channel.wait_closed)
        )
        if refusal is None:
            if packet.request_id is not None:
                self._admitted[packet.request_id] = number
            return True
        await self._answer(packet, w.FX_PERMISSION_DENIED, f"hoopd: {refusal.message}")
        return False

    async def _say(self, text: str) -> None:
        """The pipeline's message (already ``hoopd: ...``) on the channel's stderr,
        which ``sftp`` shows."""
        with suppress(OSError, asyncssh.Error):
            self.process.stderr.write(f"{text}\n".encode())
            await self.process.stderr.drain()

    async def _answer(self, packet: w.Packet, code: int, message: str) -> None:
        """The gateway's own STATUS for ``packet``, recorded first (the target never sees it)."""
        answer = w.status(packet.request_id or 0, code, message)
        await self.link.record([("stdout", {"channel": self.number, "data": answer})])
        self.process.stdout.write(answer)
        await self.process.stdout.drain()

    async def _to_target(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = b"".join(batch)
        await self.link.record([("stdin", {"channel": self.number, "data": data})])
        self.target.stdin.write(data)
        await self.target.stdin.drain()

    # -- target to client ----------------------------------------------------------

    async def _answers_pump(self) -> None:
        try:
            await self._answers_loop()
        except ProtocolError as exc:
            await self._broken("target", exc)

    async def _answers_loop(self) -> None:
        while True:
            try:
                data = await self.target.stdout.read(CHUNK)
            except (OSError, asyncssh.Error):  # the target's connection broke
                return
            if not data:
                return
            self._answers.feed(data)
            while packets := self._answers.packets():
                data = b"".join(p.raw for p in packets)
                records: list[Record] = [("stdout", {"channel": self.number, "data": data})]
                for packet in packets:
                    self.operations.answered(packet)
                    result = self._result(packet)
                    if result is not None:
                        records.append(result)
                await self.link.record(records)
                try:
                    # One write per run of whole packets: a refusal's answer,
                    # written by the other pump, can only come between packets.
                    self.process.stdout.write(data)
                    await self.process.stdout.drain()
                except (OSError, asyncssh.Error):
                    return  # the client's channel is gone

    def _result(self, packet: w.Packet) -> Record | None:
        if packet.request_id is None:
            return None
        number = self._admitted.pop(packet.request_id, None)
        if number is None:
            return None
        body: dict[str, Any] = {"command": number}
        if isinstance(packet, w.StatusReply):
            if packet.code == w.FX_OK:
                body["tag"] = "ok"
            else:
                body["error"] = {"code": str(packet.code), "message": packet.message}
        elif isinstance(packet, w.HandleReply):
            body["tag"] = "handle"
        else:
            body["tag"] = f"type {packet.type}"
        return ("result", body)

    # -- either side -----------------------------------------------------------------

    async def _broken(self, side: str, exc: ProtocolError) -> None:
        """End this channel only: a malformed packet leaves nothing to resynchronise on."""
        log.warning(
            "session %s: channel %d: malformed SFTP packet from the %s (%s); closing the channel",
            self.link.session.session_id,
            self.number,
            side,
            exc,
        )
        line = f"hoopd: malformed SFTP packet from the {side}; the channel is closed\n".encode()
        await self.link.record([("stderr", {"channel": self.number, "data": line})])
        with suppress(OSError, asyncssh.Error):
            self.process.stderr.write(line)
            self.process.exit(1)
        self.target.close()
