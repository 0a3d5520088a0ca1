"""Turning PostgreSQL messages into command events and attributing results.

Theory of operation
-------------------
Frontend side: a simple ``Query`` is one command (possibly several statements).
In the extended protocol ``Parse`` names SQL text, ``Bind`` makes a portal from a
statement plus parameters, and ``Execute`` runs a portal: the Execute is the
command, attributed to the SQL text and parameters through those two maps. A
``FunctionCall`` is an opaque command.

Backend side: every message the target answers with belongs to the oldest
request still waiting. The tracker keeps that queue (pushed as requests are
forwarded, popped as answers arrive), so each ``CommandComplete`` or
``ErrorResponse`` is recorded against the command it answers, even when clients
pipeline several requests. After an error in the extended protocol the server
skips everything up to the next ``Sync``; the queue does the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from hoopd.events import CommandResult, SqlClassification, SqlStatement

from . import backend as be
from . import frontend as fe
from .classify import classify

_UNKNOWN_PORTAL = SqlClassification(kinds=frozenset({"unknown-portal"}), opaque=True)
_FUNCTION_CALL = SqlClassification(kinds=frozenset({"function-call"}), opaque=True)


class _Pending(NamedTuple):
    """One request waiting for its answer: ``kind`` is query, execute, sync, or other.

    A named tuple: one is made for nearly every message a client sends.
    """

    kind: str
    command: SqlStatement | None
    number: int | None
    #: For a refused command: the error the client gets in place of the target's answer.
    refusal: be.ErrorResponse | None = None


@dataclass(frozen=True, slots=True)
class _Portal:
    sql: str
    classification: SqlClassification
    statement: str
    params: tuple[str | bytes | None, ...]


class StatementTracker:
    """Per-session protocol state for command attribution; see the module docstring."""

    def __init__(self) -> None:
        self._statements: dict[str, tuple[str, SqlClassification]] = {}
        self._portals: dict[str, _Portal] = {}
        self._pending: deque[_Pending] = deque()
        #: Refused commands still in the queue: while any is, answers need rewriting.
        self.refusals_pending = 0

    # ------------------------------------------------------------- frontend

    def command_for(self, message: object) -> SqlStatement | None:
        """The command this client message carries, if it carries one.

        Also updates statement and portal state; call once per message, in order.
        """
        handler = _COMMAND_HANDLERS.get(type(message))
        return None if handler is None else handler(self, message)

    def _on_query(self, message: fe.Query) -> SqlStatement:
        return SqlStatement(message.sql, classify(message.sql), origin="query")

    def _on_execute(self, message: fe.Execute) -> SqlStatement:
        portal = self._portals.get(message.portal)
        if portal is None:
            return SqlStatement("", _UNKNOWN_PORTAL, "execute", portal_name=message.portal)
        return SqlStatement(
            portal.sql,
            portal.classification,
            origin="execute",
            params=portal.params,
            statement_name=portal.statement or None,
            portal_name=message.portal or None,
        )

    def prepared(self, message: fe.Parse) -> SqlStatement:
        """The statement a Parse prepares, to judge before it reaches the target.

        Read from the message itself: a later Parse of the same name in the same
        chunk has already replaced it in the statement map.
        """
        return SqlStatement(
            message.sql,
            classify(message.sql),  # cached: command_for classified the same text
            origin="parse",
            statement_name=message.statement or None,
        )

    def _on_parse(self, message: fe.Parse) -> None:
        self._statements[message.statement] = (message.sql, classify(message.sql))

    def _on_bind(self, message: fe.Bind) -> None:
        sql, classification = self._statements.get(message.statement, ("", _UNKNOWN_PORTAL))
        self._portals[message.portal] = _Portal(
            sql, classification, message.statement, message.decoded_params()
        )

    def _on_close(self, message: fe.Close) -> None:
        if message.kind == "S":
            self._statements.pop(message.name, None)
        else:
            self._portals.pop(message.name, None)

    def _on_function_call(self, message: fe.FunctionCall) -> SqlStatement:
        return SqlStatement(
            f"-- function call: oid {message.function_oid}",
            _FUNCTION_CALL,
            origin="function-call",
            params=message.args,
        )

    def forwarded(
        self,
        message: object,
        command: SqlStatement | None,
        number: int | None,
        refusal: be.ErrorResponse | None = None,
    ) -> None:
        """Note that ``message`` went to the target, so its answer can be attributed.

        ``refusal``: the command was refused and what went to the target is its
        stand-in (:meth:`stand_in`), whose answer is to be replaced by ``refusal``.
        """
        kind = _AWAITS_ANSWER.get(type(message))
        if kind is not None:
            self._pending.append(_Pending(kind, command, number, refusal))
            if refusal is not None:
                self.refusals_pending += 1

    def stand_in(self, message: object) -> bytes:
        """The bytes to send the target in place of a refused command message.

        The target answers a stand-in with one message (``_STAND_IN_ANSWER``) at the
        exact point where the refused command's answer would have come, so
        pipelined requests stay in order. An empty query runs nothing; an Execute
        of a portal that does not exist, or a Parse of text that is not SQL, fails
        without running anything, and the target then skips to Sync exactly as
        after a real error.
        """
        if isinstance(message, fe.Execute):
            portal = _REFUSED_PORTAL
            while portal in self._portals:  # never one the client made
                portal += "!"
            return fe.Execute(portal, 0).encode()
        if isinstance(message, fe.Parse):
            # Not SQL: the target fails it at parse time, creating nothing.
            return fe.Parse(message.statement, _REFUSED_TEXT).encode()
        return fe.Query("").encode()  # Query and FunctionCall: answered, then ReadyForQuery

    def replacement_for(self, message: object) -> be.ErrorResponse | None:
        """The refusal to send in place of ``message``, if it answers a stand-in.

        Call before :meth:`result_for`, only while ``refusals_pending``; then hand
        the replacement (not ``message``) to ``result_for``, so the recorded result
        is what the client saw.
        """
        head = self._pending[0] if self._pending else None
        if head is None or head.refusal is None:
            return None
        return head.refusal if type(message) is _STAND_IN_ANSWER.get(head.kind) else None

    # -------------------------------------------------------------- backend

    def result_for(self, message: object) -> tuple[int | None, CommandResult] | None:
        """The result this target message reports, with the number of its command."""
        handler = _RESULT_HANDLERS.get(type(message))
        return None if handler is None else handler(self, message)

    def _on_complete(self, message: be.CommandComplete) -> tuple[int | None, CommandResult]:
        head = self._head(_QUERY_OR_EXECUTE)
        return self._answer(head, CommandResult(tag=message.tag, rows=message.row_count()))

    def _on_empty_query(self, message: object) -> tuple[int | None, CommandResult]:
        return self._answer(self._head(_QUERY_OR_EXECUTE), CommandResult(tag=""))

    def _on_suspended(self, message: object) -> tuple[int | None, CommandResult]:
        return self._answer(self._head(_EXECUTE), CommandResult(tag="(suspended)"))

    def _on_error(self, message: be.ErrorResponse) -> tuple[int | None, CommandResult]:
        return self._error(CommandResult(error=message.named()))

    def _on_function_result(self, message: object) -> tuple[int | None, CommandResult]:
        return self._answer(self._head(_QUERY), CommandResult(tag="(function result)"))

    def _on_ready(self, message: object) -> None:
        self._pop_through(_QUERY_OR_SYNC)

    def _on_other_answer(self, message: object) -> None:
        # ParseComplete, BindComplete, CloseComplete, and Describe's RowDescription
        # or NoData. A RowDescription inside a simple query's results arrives while
        # the head is that query, and is left alone.
        self._pop_if("other")

    def _head(self, kinds: frozenset[str]) -> _Pending | None:
        head = self._pending[0] if self._pending else None
        return head if head is not None and head.kind in kinds else None

    def _answer(
        self, head: _Pending | None, result: CommandResult
    ) -> tuple[int | None, CommandResult]:
        if head is not None and head.kind == "execute":
            self._pop()
        return (head.number if head else None), result

    def _error(self, result: CommandResult) -> tuple[int | None, CommandResult]:
        head = self._pending[0] if self._pending else None
        if head is None or head.kind == "query":
            return (head.number if head else None), result
        # Extended protocol: the server now skips to the next Sync. The error is
        # charged to the first Execute it prevents (or the one that failed).
        number = None
        while self._pending and self._pending[0].kind != "sync":
            skipped = self._pop()
            if number is None and skipped.kind == "execute":
                number = skipped.number
        return number, result

    def _pop_if(self, kind: str) -> None:
        if self._pending and self._pending[0].kind == kind:
            self._pop()

    def _pop_through(self, kinds: frozenset[str]) -> None:
        while self._pending:
            if self._pop().kind in kinds:
                return

    def _pop(self) -> _Pending:
        head = self._pending.popleft()
        if head.refusal is not None:
            self.refusals_pending -= 1
        return head


_REFUSED_PORTAL: Final = "hoopd: refused statement"
_REFUSED_TEXT: Final = "hoopd refused this statement"

#: What the target answers each kind of stand-in with (see ``stand_in``).
_STAND_IN_ANSWER: Final[dict[str, type]] = {
    "query": be.EmptyQueryResponse,
    "execute": be.ErrorResponse,
    "other": be.ErrorResponse,  # a refused Parse's stand-in fails to parse
}


# What each forwarded client message waits for: "query" (answered by results and
# ReadyForQuery), "execute" (one result), "sync" (ReadyForQuery), "other" (one
# acknowledgement). Flush and COPY messages wait for nothing of their own.
_AWAITS_ANSWER: Final[dict[type, str]] = {
    fe.Query: "query",
    fe.FunctionCall: "query",
    fe.Execute: "execute",
    fe.Sync: "sync",
    fe.Parse: "other",
    fe.Bind: "other",
    fe.Close: "other",
    fe.Describe: "other",
}

_QUERY: Final = frozenset({"query"})
_EXECUTE: Final = frozenset({"execute"})
_QUERY_OR_EXECUTE: Final = frozenset({"query", "execute"})
_QUERY_OR_SYNC: Final = frozenset({"query", "sync"})

# Dispatch by exact message type: these run for every message each side sends.
_COMMAND_HANDLERS: Final[dict[type, Callable[[StatementTracker, Any], SqlStatement | None]]] = {
    fe.Query: StatementTracker._on_query,
    fe.Execute: StatementTracker._on_execute,
    fe.Parse: StatementTracker._on_parse,
    fe.Bind: StatementTracker._on_bind,
    fe.Close: StatementTracker._on_close,
    fe.FunctionCall: StatementTracker._on_function_call,
}

_RESULT_HANDLERS: Final[dict[type, Callable[[StatementTracker, Any], Any]]] = {
    be.CommandComplete: StatementTracker._on_complete,
    be.EmptyQueryResponse: StatementTracker._on_empty_query,
    be.PortalSuspended: StatementTracker._on_suspended,
    be.ErrorResponse: StatementTracker._on_error,
    be.FunctionCallResponse: StatementTracker._on_function_result,
    be.ReadyForQuery: StatementTracker._on_ready,
    be.ParseComplete: StatementTracker._on_other_answer,
    be.BindComplete: StatementTracker._on_other_answer,
    be.CloseComplete: StatementTracker._on_other_answer,
    be.RowDescription: StatementTracker._on_other_answer,
    be.NoData: StatementTracker._on_other_answer,
}
