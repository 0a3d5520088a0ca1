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
from typing import TYPE_CHECKING, Any, NamedTuple

from hoopd.actions import ADMIN, action_name, level_of
from hoopd.events import NAMED_ONLY_KINDS, CommandResult, HostCommand, SqlStatement
from hoopd.identity.base import Identity
from hoopd.policy.verdict import Subject, Verdict
from hoopd.recording.journal import RecorderError, SessionRecorder

if TYPE_CHECKING:
    from hoopd.approval_stage import ApprovalStage, ClientGone, Notify
    from hoopd.policy.policy import Policy

Command = SqlStatement | HostCommand
"""What a protocol engine hands the pipeline: every command has ``text``,
``params``, ``classification`` and ``to_record()``."""


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
    #: What policy knows of this session; made on first use.
    subject: Subject | None = None
    #: Column mask rules cover this session: a bulk export that names no columns on
    #: the wire (PostgreSQL's COPY TO STDOUT) could not be masked, so it is refused.
    copy_out_refused: bool = False
    #: Tells the client something at once, in its protocol (set by the engine);
    #: without it a command that needs approval cannot wait for one.
    notify: Notify | None = None
    #: Returns once the client has gone away (set by the engine with ``notify``).
    client_gone: ClientGone | None = None
    #: The widest action the token's scope grants on this connection (see
    #: hoopd.identity.scope); a command needing more is refused before policy.
    granted_level: int = ADMIN


class Refusal(NamedTuple):
    """A command the policy does not let through; the session goes on.

    ``message`` is for the client; ``rule`` names the deciding rule (None when a
    default decided); ``action`` is the verdict that refused it (``deny``, or
    ``approve`` without an approval, ``mask`` for an export masking rules forbid,
    or ``scope`` for a command the token's scope does not reach).
    """

    message: str
    rule: str | None
    action: str


class Admission(NamedTuple):
    """The pipeline's answer for one command: its number in the session, and the
    refusal if it must not reach the target (then the engine tells the client, in
    the client's protocol, at the point where the target would have answered)."""

    number: int
    refusal: Refusal | None


class Pipeline:
    """Applies the gateway's stages to commands and results of every protocol.

    ``policy`` may be replaced at any moment (reload); each command is judged by
    the policy in force when it arrives. Without a policy every command is let
    through (and recorded), except the host command kinds only a rule naming
    them may allow (:data:`hoopd.events.NAMED_ONLY_KINDS`), which are refused.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy
        #: Holds commands that need approval; None refuses them instead.
        self.approvals: ApprovalStage | None = None

    async def admit(self, session: Session, commands: Sequence[Command]) -> list[Admission]:
        """Judge and record ``commands``; raise ``CommandRefused`` if recording fails.

        Returns, per command, its number in the session (1, 2, ...), which results
        refer to, and whether policy refused it. Guarantees: when this returns,
        every command's record (with the verdict, when a policy is in force) is
        written with the durability the journal was opened with; a refused command
        must not be forwarded.
        """
        policy = self.policy
        records: list[tuple[str, Mapping[str, Any]]] = []
        admissions = []
        number = session.commands
        for command in commands:
            number += 1
            body = _statement_record(command, number)
            refusal = _beyond_scope(session, command)
            if refusal is not None:
                body["verdict"] = _scope_verdict_record(refusal)
            elif policy is not None:
                verdict = policy.judge(session_subject(session), command)
                body["verdict"] = _verdict_record(verdict)
                if verdict.action == "approve":
                    refusal = await self._hold(session, command, verdict, body)
                else:
                    refusal = _refusal(verdict)
            elif NAMED_ONLY_KINDS & command.classification.kinds:
                # Without a policy nothing names them, so nothing allows them.
                refusal = Refusal(_NOT_NAMED_MESSAGE, None, "deny")
                body["verdict"] = {"action": "deny", "rule": None, "message": refusal.message}
            if refusal is None and session.copy_out_refused and _exports(command):
                refusal = Refusal(_COPY_OUT_MESSAGE, None, "mask")
                body["verdict"] = {"action": "deny", "rule": None, "message": refusal.message}
            records.append(("statement", body))
            admissions.append(Admission(number, refusal))
        try:  # _write, inlined here and in observe: they run for every statement
            await session.recorder.append(records)
        except RecorderError as exc:
            raise _recording_refused() from exc
        session.commands = number
        return admissions

    async def screen(self, session: Session, command: Command) -> Refusal | None:
        """Judge a statement being prepared, which runs nothing yet.

        Only a deny refuses it now (approval is asked for when it runs); the refusal
        is recorded like a refused command. A statement that passes is not recorded
        here: it is judged and recorded again when it runs. Raises ``CommandRefused``
        (fatal) if the refusal cannot be recorded.
        """
        refusal = _beyond_scope(session, command)
        if refusal is not None:
            verdict_record = _scope_verdict_record(refusal)
        elif self.policy is not None:
            verdict = self.policy.judge(session_subject(session), command)
            if verdict.action != "deny":
                return None
            refusal, verdict_record = _refusal(verdict), _verdict_record(verdict)
        else:
            return None
        number = session.commands + 1
        body = _statement_record(command, number)
        body["verdict"] = verdict_record
        await self._write(session, [("statement", body)])
        session.commands = number
        return refusal

    async def _hold(
        self, session: Session, command: Command, verdict: Verdict, body: dict[str, Any]
    ) -> Refusal | None:
        """Wait for approval; the outcome (who decided, why, when) joins the record."""
        if self.approvals is None or session.notify is None or session.client_gone is None:
            return _refusal(verdict)
        held = await self.approvals.hold(
            session_id=session.session_id,
            identity=session.identity,
            connection=session.connection,
            protocol=session.protocol,
            command=command,
            verdict=verdict,
            notify=session.notify,
            client_gone=session.client_gone,
        )
        body["approval"] = held.record
        return None if held.approved else Refusal(held.message, verdict.rule, "approve")

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


_NOT_NAMED_MESSAGE = (
    "denied: no policy is in force, and remote forwarding, agent and X11 forwarding"
    " need a policy rule that allows them by name"
)

_COPY_OUT_MESSAGE = (
    "COPY TO STDOUT is refused on this connection: masking rules cover some of its columns,"
    " and COPY does not name them; use SELECT instead"
)


def _exports(command: Command) -> bool:
    return "copy-out" in command.classification.kinds


def session_subject(session: Session) -> Subject:
    """What policy knows of ``session`` (made once, then kept on the session)."""
    subject = session.subject
    if subject is None:
        subject = session.subject = Subject(
            session.identity, session.connection, session.labels, session.protocol
        )
    return subject


def _statement_record(command: Command, number: int) -> dict[str, Any]:
    body = command.to_record()
    body["command"] = number
    return body


def _verdict_record(verdict: Verdict) -> dict[str, Any]:
    record: dict[str, Any] = {"action": verdict.action, "rule": verdict.rule}
    if verdict.message is not None:
        record["message"] = verdict.message
    return record


def _beyond_scope(session: Session, command: Command) -> Refusal | None:
    """The refusal of a command the token's scope does not reach, else None."""
    granted = session.granted_level
    if granted >= ADMIN:
        return None  # the common case costs one comparison
    needed = level_of(command.classification)
    if needed <= granted:
        return None
    message = (
        f"the token's scope allows {action_name(granted)} on {session.connection};"
        f" this {'statement' if isinstance(command, SqlStatement) else 'command'} needs"
        f" {action_name(needed)}"
    )
    return Refusal(message, None, "scope")


def _scope_verdict_record(refusal: Refusal) -> dict[str, Any]:
    return {"action": "deny", "rule": None, "scope": True, "message": refusal.message}


def _refusal(verdict: Verdict) -> Refusal | None:
    if verdict.action == "allow":
        return None
    if verdict.action == "approve":
        # Approval cannot be granted by this gateway yet: holding the statement
        # forever would hang the client, letting it through would bypass the rule.
        groups = ", ".join(verdict.approvers) or "an approver"
        message = f"this statement needs approval by {groups}, which this gateway cannot take yet"
        return Refusal(message, verdict.rule, "approve")
    return Refusal(verdict.message or "denied by policy", verdict.rule, "deny")
