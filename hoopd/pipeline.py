"""The protocol-neutral pipeline every command and result passes through.

Protocol engines hand it typed events (``hoopd.events``); it never sees bytes.
For a command the stages are: identity (already attached to the session) ->
verdict -> record; a command is let through only after its record is written.
For a result: record, before the client is shown it. Policy blocking, approval
and masking plug in as further stages here, not in the engines.

Fail closed: when a stage cannot do its work (the recorder cannot write), the
pipeline raises :class:`CommandRefused` with ``fatal=True`` and the engine ends
the session without forwarding the command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hoopd.events import CommandResult, SqlStatement
from hoopd.identity.base import Identity
from hoopd.recording.journal import RecorderError, SessionRecorder

Command = SqlStatement


class CommandRefused(Exception):
    """A command must not reach the target.

    ``message`` is safe to show the client; ``code`` is the reason in a
    protocol-neutral form that engines map to their own error codes
    (``"recording-unavailable"``, later ``"policy-denied"``, ``"approval-timeout"``).
    ``fatal`` means the session cannot continue.
    """

    def __init__(self, message: str, code: str, fatal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fatal = fatal


@dataclass(slots=True)
class Session:
    """One client session through the gateway, as the pipeline knows it."""

    session_id: str
    identity: Identity
    connection: str
    protocol: str
    client_addr: str
    recorder: SessionRecorder
    labels: Mapping[str, str] = field(default_factory=dict)
    commands: int = 0


class Pipeline:
    """Applies the gateway's stages to commands and results of every protocol."""

    async def admit(self, session: Session, commands: Sequence[Command]) -> list[int]:
        """Let ``commands`` through, or raise ``CommandRefused``.

        Returns each command's number in the session (1, 2, ...), which results
        refer to. Guarantees: when this returns, every command's record is written
        with the durability the journal was opened with.
        """
        records: list[tuple[str, Mapping[str, Any]]] = []
        numbers = []
        number = session.commands
        for command in commands:
            number += 1
            body = command.to_record()
            body["command"] = number
            records.append(("statement", body))
            numbers.append(number)
        try:
            await session.recorder.append(records)
        except RecorderError as exc:
            raise _recording_refused() from exc
        session.commands = number
        return numbers

    async def observe(
        self, session: Session, results: Sequence[tuple[int | None, CommandResult]]
    ) -> None:
        """Record results (each with the number of the command it answers) before
        the client sees them; raises ``CommandRefused`` (fatal) if it cannot."""
        records: list[tuple[str, Mapping[str, Any]]] = []
        for command_number, result in results:
            body = result.to_record()
            if command_number is not None:
                body["command"] = command_number
            records.append(("result", body))
        if records:
            try:
                await session.recorder.append(records)
            except RecorderError as exc:
                raise _recording_refused() from exc

    async def note(self, session: Session, kind: str, body: Mapping[str, Any]) -> None:
        """Record a session event that is neither a command nor a result."""
        await self._write(session, [(kind, body)])

    @staticmethod
    async def _write(session: Session, records: list[tuple[str, Mapping[str, Any]]]) -> None:
        if not records:
            return
        try:
            await session.recorder.append(records)
        except RecorderError as exc:
            raise _recording_refused() from exc


def _recording_refused() -> CommandRefused:
    return CommandRefused(
        "session recording is unavailable; the gateway refuses to run commands",
        "recording-unavailable",
        fatal=True,
    )
