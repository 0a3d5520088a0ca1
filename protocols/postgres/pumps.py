"""The two pumps of an established PostgreSQL session.

``client_to_target`` decodes every complete message in a received chunk, turns
commands into typed events, has the pipeline judge and record them, and forwards
the chunk's original bytes in one write (or, when the policy refused a command,
the chunk with a stand-in in its place: see ``StatementTracker.stand_in``).
``target_to_client`` decodes the answers, has the pipeline record the results,
and forwards the original bytes; while a refusal is pending or rules mask this
session's results it goes message by message, replacing what must not reach the
client.

A pump that must end the session (bad input, recorder or masking failure) stores
why in ``end`` and returns; the caller cancels the other pump and only then
writes ``end.reply`` to the client, so each stream has a single writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import trio

from hoopd.codec import NEED_DATA, ProtocolError
from hoopd.events import CommandResult, SqlStatement
from hoopd.gateway import Gateway
from hoopd.pipeline import Admission, CommandRefused, Refusal, Session
from hoopd.relay import ByteStream

from . import backend as be
from . import frontend as fe
from . import refusals
from .bidirectional import CopyData
from .codec import CONNECTION_CLOSED, Message
from .handshake import ClientLeg
from .masking import MaskingError, ResultMasker
from .tracker import StatementTracker
from .upstream import Upstream

log = logging.getLogger("hoopd.postgres")

REFUSAL_CODES = {"recording-unavailable": "58030"}


def _nothing() -> None:
    pass


@dataclass(slots=True)
class SessionEnd:
    """Why a session ended, and the last words for the client (may be empty)."""

    reason: str
    reply: bytes = b""


class SessionPumps:
    """The two pumps of one session; see the module docstring."""

    def __init__(
        self,
        gateway: Gateway,
        session: Session,
        leg: ClientLeg,
        upstream: Upstream,
        masker: ResultMasker | None = None,
        activity: Callable[[], None] = _nothing,
    ):
        self.pipeline = gateway.pipeline
        self.session = session
        self.client: ByteStream = leg.stream
        self.client_codec = leg.codec
        self.target: ByteStream = upstream.stream
        self.target_codec = upstream.codec
        self.tracker = StatementTracker()
        # Rows and COPY data carry no command and no result summary: frame them only.
        self.client_codec.passing_bulk()
        self.target_codec.passing_bulk()
        #: Set when rules mask this session's results: then every answer is looked at.
        self.masker = masker
        if masker is not None:
            # Decode rows until a RowDescription shows that no rule touches them, so
            # rows whose columns are unknown are never sent unexamined.
            self.target_codec.pass_through = _DECODE_EVERYTHING
        self.end = SessionEnd("client closed the connection")
        #: Called for every chunk either way (the idle timeout's clock).
        self.activity = activity
        self._client_left = False
        # Both pumps may write to the client (results; notices while a command waits
        # for approval): a write that has to wait keeps the other one out.
        self._client_busy = False
        self._client_waiters = 0
        self._client_free = trio.lowlevel.ParkingLot()

    async def client_to_target(self) -> None:
        # The per-statement hot path: names bound once, one pass over the messages.
        codec, receive, send = self.client_codec, self.client.receive_some, self.target.send_all
        command_for, forwarded = self.tracker.command_for, self.tracker.forwarded
        admit, session, activity = self.pipeline.admit, self.session, self.activity
        while True:
            codec.receive_data(await receive())
            activity()
            try:
                messages, closed = codec.drain()
            except ProtocolError as exc:
                log.warning("session %s: client protocol error: %s", session.session_id, exc)
                self.end = SessionEnd(
                    "client protocol error", refusals.fatal(exc.code, exc.message)
                )
                return
            commands = [command_for(message) for message in messages]
            admitted = [command for command in commands if command is not None]
            admissions: Sequence[Admission] = ()
            screened: dict[int, Refusal] = {}
            try:
                if self.pipeline.policy is not None:
                    screened = await self._screen_parses(messages)
                if admitted:
                    admissions = await admit(session, admitted)
            except CommandRefused as refused:
                self.end = self._refused(refused)
                return
            if screened or any(admission.refusal for admission in admissions):
                out = self._with_stand_ins(messages, commands, admissions, screened)
                if out is None:
                    return
            else:
                numbers = iter(admissions)
                for message, command in zip(messages, commands, strict=True):
                    forwarded(message, command, next(numbers).number if command else None)
                out = codec.take_consumed()
            leaving = closed or any(type(message) is fe.Terminate for message in messages)
            if leaving:
                # Said before the Terminate goes out: the target closing in answer to it
                # must not be recorded as the target's doing.
                self._client_left = True
                self.end = SessionEnd("client closed the connection")
            if out:
                await send(out)
            if leaving:
                return

    async def _screen_parses(self, messages: Sequence[Message]) -> dict[int, Refusal]:
        """Refusals for the statements being prepared in this chunk, by message index."""
        refused: dict[int, Refusal] = {}
        for index, message in enumerate(messages):
            if type(message) is fe.Parse:
                statement = self.tracker.prepared(message)
                refusal = await self.pipeline.screen(self.session, statement)
                if refusal is not None:
                    refused[index] = refusal
        return refused

    def _with_stand_ins(
        self,
        messages: Sequence[Message],
        commands: Sequence[SqlStatement | None],
        admissions: Sequence[Admission],
        screened: Mapping[int, Refusal],
    ) -> bytes | None:
        """The chunk to forward with each refused command replaced by its stand-in.

        Returns None (and sets ``end``) if the chunk cannot be rebuilt exactly: it
        held COPY data, which is framed but not decoded.
        """
        original = self.client_codec.take_consumed()
        parts: list[bytes] = []
        rebuilt: list[bytes] = []
        numbers = iter(admissions)
        for index, (message, command) in enumerate(zip(messages, commands, strict=True)):
            encoded = message.encode()  # type: ignore[union-attr]
            rebuilt.append(encoded)
            admission = next(numbers) if command is not None else None
            refusal = admission.refusal if admission is not None else screened.get(index)
            number = admission.number if admission is not None else None
            if refusal is None:
                self.tracker.forwarded(message, command, number)
                parts.append(encoded)
                continue
            log.info(
                "session %s: %s refused by %s",
                self.session.session_id,
                f"command {number}" if number is not None else "a statement being prepared",
                f'rule "{refusal.rule}"' if refusal.rule else "the default policy",
            )
            self.tracker.forwarded(message, command, number, refusals.policy_refusal(refusal))
            parts.append(self.tracker.stand_in(message))
        if b"".join(rebuilt) != original:
            self.end = SessionEnd(
                "refusal inside COPY data",
                refusals.fatal(
                    refusals.FEATURE_NOT_SUPPORTED,
                    "a refused statement arrived in the same packet as COPY data",
                ),
            )
            return None
        return b"".join(parts)

    async def target_to_client(self) -> None:
        codec, receive = self.target_codec, self.target.receive_some
        result_for, observe, session = self.tracker.result_for, self.pipeline.observe, self.session
        activity = self.activity
        while True:
            codec.receive_data(await receive())
            activity()
            out = b""
            try:
                # The answer to a refused command's stand-in can only be in data that
                # arrived after the stand-in was sent, so checking here is enough.
                if self.tracker.refusals_pending or self.masker is not None:
                    out, results, closed = self._answers_rewritten()
                else:
                    messages, closed = codec.drain()
                    results = [r for r in map(result_for, messages) if r is not None]
            except ProtocolError as exc:
                log.warning("session %s: target protocol error: %s", session.session_id, exc)
                self.end = SessionEnd(
                    "target protocol error",
                    refusals.fatal("08P01", "the target sent an invalid message"),
                )
                return
            except MaskingError as exc:
                log.error("session %s: masking failed: %s", session.session_id, exc)
                self.end = SessionEnd(
                    "masking failed",
                    refusals.fatal(
                        refusals.FEATURE_NOT_SUPPORTED,
                        f"hoopd: a result could not be masked, so it was not sent: {exc}",
                    ),
                )
                return
            if results:
                try:
                    await observe(session, results)
                except CommandRefused as refused:
                    self.end = self._refused(refused)
                    return
            out = out or codec.take_consumed()
            if out:
                await self._to_client(out)
            if closed:
                if not self._client_left:
                    self.end = SessionEnd("target closed the connection")
                return

    async def notify(self, text: str) -> None:
        """Send the client a NOTICE now, between whole messages of the results."""
        notice = be.NoticeResponse.build(refusals.SUCCESSFUL_COMPLETION, text, severity="NOTICE")
        await self._to_client(notice.encode())

    async def _to_client(self, data: bytes) -> None:
        if self._client_busy:
            await self._wait_for_client()
        self._client_busy = True
        try:
            await self.client.send_all(data)
        finally:
            self._client_busy = False
            if self._client_waiters:
                self._client_free.unpark_all()

    async def _wait_for_client(self) -> None:
        self._client_waiters += 1
        try:
            while self._client_busy:
                await self._client_free.park()
        finally:
            self._client_waiters -= 1

    def _answers_rewritten(self) -> tuple[bytes, list[tuple[int | None, CommandResult]], bool]:
        """Decode the buffered answers one by one, replacing each stand-in's answer by
        the refusal it stands for: the bytes for the client, the results to record
        (the refusals included, as the client sees them), and whether the target closed.
        """
        codec, tracker, masker = self.target_codec, self.tracker, self.masker
        parts: list[bytes] = []
        results: list[tuple[int | None, CommandResult]] = []
        while (event := codec.next_event()) is not NEED_DATA:
            if event is CONNECTION_CLOSED:
                parts.append(codec.take_consumed())
                return b"".join(parts), results, True
            original = message = cast(Message, event)
            # The rows framed before this message, then the message itself.
            piece = codec.take_consumed()
            if type(message) is be.DataRow and masker is not None and masker.plan is not None:
                # The bulk of a masked result: a row answers no request and is no result.
                masked = masker.row(message)
                if masked is not message:
                    piece = piece[: len(piece) - 5 - len(message.body)] + masked.encode()
                parts.append(piece)
                continue
            if tracker.refusals_pending:
                message = tracker.replacement_for(message) or message
            if masker is not None:
                message = self._masked(message)
            if message is not original:
                own = len(original.encode())  # type: ignore[union-attr]
                piece = piece[: len(piece) - own] + message.encode()  # type: ignore[union-attr]
            result = tracker.result_for(message)
            if result is not None:
                results.append(result)
            parts.append(piece)
        parts.append(codec.take_consumed())
        return b"".join(parts), results, False

    def _masked(self, message: Message) -> Message:
        """``message`` as the client may see it under this session's masking rules.

        Raises MaskingError when that cannot be done (the caller ends the session).
        """
        masker, kind = self.masker, type(message)
        assert masker is not None
        if kind is be.DataRow:
            # Rows under a plan never get here (_answers_rewritten masks them itself).
            raise MaskingError("rows arrived without a row description to resolve them")
        if kind is be.RowDescription:
            described = masker.describe(message)  # type: ignore[arg-type]
            # Rows no rule touches are forwarded from their original bytes, undecoded.
            rewrite = masker.plan is not None
            self.target_codec.pass_through = _DECODE_EVERYTHING if rewrite else _SKIP_ROWS
            return described
        if kind is CopyData:
            return masker.copy_data(message)  # type: ignore[arg-type]
        if kind is be.ErrorResponse or kind is be.NoticeResponse:
            if kind is be.ErrorResponse:
                self._result_ended()
            return masker.fields(message)  # type: ignore[arg-type]
        if kind in _RESULT_ENDS:
            self._result_ended()
        return message

    def _result_ended(self) -> None:
        assert self.masker is not None
        self.masker.end_result()
        self.target_codec.pass_through = _DECODE_EVERYTHING

    def _refused(self, refused: CommandRefused) -> SessionEnd:
        log.error("session %s: %s", self.session.session_id, refused.message)
        code = REFUSAL_CODES.get(refused.code, "42501")
        return SessionEnd(refused.code, refusals.fatal(code, refused.message))


# What the target codec skips undecoded in a masked session: nothing, or (within a
# result no rule touches) its rows. A suspended portal keeps its result's plan.
_DECODE_EVERYTHING: frozenset[int] = frozenset()
_SKIP_ROWS: frozenset[int] = frozenset(b"D")
_RESULT_ENDS = (be.CommandComplete, be.EmptyQueryResponse, be.ReadyForQuery)
