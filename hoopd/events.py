"""Typed, protocol-neutral command events: what the pipeline sees.

Codecs decode wire messages; protocol engines turn the messages that carry a
command into these events, so the pipeline (identity, policy, approval, recording)
never needs to know which protocol a command came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

_RECORD_CACHE_ENTRIES = 10_000
_CLASSIFICATION_RECORDS: dict[SqlClassification, dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class SqlClassification:
    """What PostgreSQL will do with a piece of SQL text, as far as the text tells.

    ``kinds`` holds one or more statement kinds (see docs/classification.md for the
    vocabulary: ``select``, ``insert``, ``update``, ``delete``, ``copy-in``, ``ddl``,
    ``drop``, ``do-block``, ``explain-analyze-write``, ...). Table names are
    schema-qualified as written (``public.t`` stays ``public.t``, ``t`` stays ``t``).
    ``parse_error`` is set when the text is not valid SQL for PostgreSQL's grammar;
    then ``kinds`` is ``{"unparseable"}`` so policy can fail closed on it.
    ``opaque`` is set when the text parses but its effect cannot be known from it
    (for example ``EXECUTE`` of a statement prepared in an earlier string).
    """

    kinds: frozenset[str]
    tables_read: frozenset[str] = frozenset()
    tables_written: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    statement_count: int = 1
    where_absent: bool = False
    opaque: bool = False
    parse_error: str | None = None

    def to_record(self) -> dict[str, Any]:
        """A plain-dict form with sorted lists, stable for recording and JSON output.

        Computed once per classification (classifications are cached and shared by
        every statement with the same text); callers must not modify it.
        """
        cached = _CLASSIFICATION_RECORDS.get(self)
        if cached is not None:
            return cached
        record = self._build_record()
        if len(_CLASSIFICATION_RECORDS) >= _RECORD_CACHE_ENTRIES:
            _CLASSIFICATION_RECORDS.clear()
        _CLASSIFICATION_RECORDS[self] = record
        return record

    def _build_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kinds": sorted(self.kinds),
            "tables_read": sorted(self.tables_read),
            "tables_written": sorted(self.tables_written),
            "functions": sorted(self.functions),
            "statement_count": self.statement_count,
        }
        if self.where_absent:
            record["where_absent"] = True
        if self.opaque:
            record["opaque"] = True
        if self.parse_error is not None:
            record["parse_error"] = self.parse_error
        return record


@dataclass(frozen=True, slots=True)
class SqlStatement:
    """One SQL command about to be sent to a target.

    ``origin`` says how it travels: ``"query"`` (simple protocol, possibly several
    statements), ``"execute"`` (an extended-protocol Execute of a named or unnamed
    portal), ``"function-call"`` (the legacy FunctionCall message), or ``"parse"`` (a
    statement being prepared, judged before it runs; recorded only when refused).
    ``params`` are the bound parameter values: ``str`` for text format, ``bytes``
    for binary format, ``None`` for NULL.
    """

    sql: str
    classification: SqlClassification
    origin: str = "query"
    params: tuple[str | bytes | None, ...] = ()
    statement_name: str | None = None
    portal_name: str | None = None

    @property
    def text(self) -> str:
        """The command as text (for approvals and logs): the SQL."""
        return self.sql

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "sql": self.sql,
            "origin": self.origin,
            "classification": self.classification.to_record(),
        }
        if self.params:
            record["params"] = list(self.params)
        if self.statement_name:
            record["statement_name"] = self.statement_name
        if self.portal_name:
            record["portal_name"] = self.portal_name
        return record


HOST_KINDS: Final = frozenset(
    {
        "exec", "shell", "subsystem",
        "sftp-read", "sftp-write", "sftp-list", "sftp-remove", "sftp-rename", "sftp-mkdir",
        "sftp-setstat",
        "forward", "remote-forward", "agent-forward", "x11",
    }
)  # fmt: skip
"""The kinds of command a host reached over SSH receives (docs/policy.md)."""

NAMED_ONLY_KINDS: Final = frozenset({"remote-forward", "agent-forward", "x11"})
"""Host command kinds that only a rule naming them can allow: the connection's
default never applies to them, and neither does a rule that matches them for
another reason (docs/policy.md "Deciding"). Each opens a way from the target back
to the client's side (a listener there, the client's agent, its display)."""


@dataclass(frozen=True, slots=True)
class HostClassification(SqlClassification):
    """What the policy knows of a host command. Every command is judged by a
    classification; a host command's SQL facts (tables, functions, ...) are empty,
    so rules on them never match it, and its own facts are these: the command line
    and its program (the basename of ``argv[0]``), the paths an SFTP operation
    touches, the ``host:port`` a forward opens."""

    command_line: str = ""
    program: str = ""
    paths: frozenset[str] = frozenset()
    destination: str = ""


@dataclass(frozen=True, slots=True)
class HostCommand:
    """One command for a host reached over SSH, about to be carried out.

    ``kind`` is one of :data:`HOST_KINDS`; ``text`` the command line (``exec``), the
    subsystem's name, or the operation written out (``open /etc/shadow for read``);
    ``argv`` the command line split as a POSIX shell would (empty when it cannot
    be); ``paths`` and ``destination`` what an SFTP operation or a forward names.
    """

    kind: str
    text: str
    argv: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    destination: str = ""
    origin: str = "ssh"

    @property
    def classification(self) -> HostClassification:
        program = self.argv[0].rsplit("/", 1)[-1] if self.argv else ""
        return HostClassification(
            kinds=frozenset({self.kind}),
            command_line=self.text,
            program=program,
            paths=frozenset(self.paths),
            destination=self.destination,
        )

    @property
    def params(self) -> tuple[str, ...]:
        """What an approval's digest covers besides the text."""
        return (*self.paths, self.destination) if self.paths or self.destination else ()

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind, "text": self.text, "origin": self.origin}
        if self.argv:
            record["argv"] = list(self.argv)
        if self.paths:
            record["paths"] = list(self.paths)
        if self.destination:
            record["destination"] = self.destination
        return record


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How the target answered one command.

    ``tag`` is the command tag (``SELECT 3``, ``INSERT 0 1``); ``rows`` the row count
    it reports, when it reports one; ``error`` the error fields by name
    (``severity``, ``code``, ``message``, ``detail``, ...) when the command failed.
    """

    tag: str | None = None
    rows: int | None = None
    error: dict[str, str] | None = None
    notices: tuple[dict[str, str], ...] = field(default=())

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.tag is not None:
            record["tag"] = self.tag
        if self.rows is not None:
            record["rows"] = self.rows
        if self.error is not None:
            record["error"] = self.error
        return record
