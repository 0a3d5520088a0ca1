"""Masking PostgreSQL responses: which columns a result carries, and rewriting rows.

The protocol-neutral rules and detectors are in :mod:`hoopd.masking`; this module
maps PostgreSQL's wire facts onto them:

* a ``RowDescription`` names each column, the table it comes from (by OID, resolved
  through the catalog snapshot taken when the session started) and its format;
* each ``DataRow`` of a result under a plan is decoded, masked and re-encoded;
  results no rule touches keep being forwarded from their original bytes;
* ``ErrorResponse`` and ``NoticeResponse`` texts, which can echo values
  (``Key (email)=(...) already exists``), go through the detectors;
* ``COPY ... TO STDOUT`` lines go through the detectors, and a COPY whose columns a
  column rule could cover is refused (COPY names no columns on the wire).

Fail closed: what cannot be masked is never sent; :class:`MaskingError` ends the
session with an error instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from hoopd.codec import ProtocolError
from hoopd.masking.errors import MaskingError
from hoopd.masking.masker import Masker, MaskPlan
from hoopd.masking.rules import Column, MaskRule

from . import backend as be
from . import frontend as fe
from .bidirectional import CopyData
from .io import read_message
from .upstream import Upstream

__all__ = ["TABLE_NAMES_SQL", "MaskingError", "ResultMasker"]

#: The catalog snapshot: every relation a result column can come from.
TABLE_NAMES_SQL = (
    "select c.oid, n.nspname, c.relname from pg_catalog.pg_class c"
    " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
    " where c.relkind in ('r', 'v', 'm', 'p', 'f')"
)

# Types whose binary format is the text itself (UTF-8): text, varchar, bpchar, name,
# json, xml, unknown. Binary values of any other type under a rule cannot be masked.
_BINARY_TEXT_TYPES = frozenset({25, 1043, 1042, 19, 114, 142, 705})

_TEXT = 25  # the OID of type text

# Error and notice fields that can carry data values.
_VALUE_FIELDS = frozenset({"M", "D", "H", "W", "q"})


class ResultMasker:
    """One session's masking state: the plan of the result being relayed."""

    def __init__(
        self,
        masker: Masker,
        tables: Mapping[int, str],
        copy_out_refused: bool,
        columns: Mapping[tuple[int, int], str] | None = None,
    ) -> None:
        self._masker = masker
        self._tables = tables
        #: (table OID, attribute number) -> the column's own name, for the columns
        #: whose names a rule could cover (so an alias cannot hide them).
        self._columns = columns or {}
        #: Column rules exist: a COPY TO STDOUT (no column names on the wire) is refused.
        self.copy_out_refused = copy_out_refused
        self.plan: MaskPlan | None = None
        #: Rules that changed something since the last call of :meth:`take_applied`.
        self._applied: set[str] = set()

    def describe(self, message: be.RowDescription) -> be.RowDescription:
        """Start a result; returns the description the client gets.

        A text-format column of another type (an integer, a date) whose whole value a
        rule masks is described as ``text``: the client receives a marker, not a
        value of that type, and should not try to parse one.
        """
        columns = [self._column(field) for field in message.fields]
        plan = self.plan = self._masker.plan(columns)
        if plan is None:
            return message
        fields = list(message.fields)
        changed = False
        for index, _rule in plan.whole:
            field = fields[index]
            if field.format_code == 0 and field.type_oid not in _BINARY_TEXT_TYPES:
                fields[index] = field._replace(type_oid=_TEXT, type_size=-1, type_modifier=-1)
                changed = True
        return be.RowDescription(tuple(fields)) if changed else message

    def end_result(self) -> None:
        self.plan = None

    def row(self, message: be.DataRow) -> be.DataRow:
        """The row as the client may see it. Raises MaskingError."""
        assert self.plan is not None
        masked, applied = self._masker.mask_row(self.plan, message.values())
        if not applied:
            return message
        self._applied.update(applied)
        return be.DataRow.from_values(tuple(masked))

    def copy_data(self, message: CopyData) -> CopyData:
        text = _utf8(message.data)
        masked, applied = self._masker.mask_text(text)
        if not applied:
            return message
        self._applied.update(applied)
        return CopyData(masked.encode())

    def fields(
        self, message: be.ErrorResponse | be.NoticeResponse
    ) -> be.ErrorResponse | be.NoticeResponse:
        """An error or notice with the values it echoes masked."""
        changed = False
        fields = []
        for letter, value in message.fields:
            if letter in _VALUE_FIELDS:
                masked, applied = self._masker.mask_text(value)
                if applied:
                    changed = True
                    self._applied.update(applied)
                    value = masked
            fields.append((letter, value))
        return type(message)(tuple(fields)) if changed else message

    def take_applied(self) -> list[str]:
        applied, self._applied = sorted(self._applied), set()
        return applied

    def _column(self, field: be.FieldDescription) -> Column:
        text = field.format_code == 0 or field.type_oid in _BINARY_TEXT_TYPES
        if not field.table_oid:
            return Column(field.name, None, text)
        table = self._tables.get(field.table_oid)
        source = self._columns.get((field.table_oid, field.column_number))
        return Column(field.name, table, text, source)


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MaskingError("COPY data is not UTF-8; it cannot be masked") from exc


async def result_masker(
    rules: list[MaskRule], hmac_key: bytes, upstream: Upstream
) -> ResultMasker | None:
    """The session's masking state, or None without rules.

    With column rules, the catalog snapshot is read over the session's own target
    connection before the client is told it is ready. Raises ``ProtocolError`` or
    :class:`MaskingError` when that fails (the session must not go on unmasked).
    """
    if not rules:
        return None
    column_rules = any(rule.columns for rule in rules)
    if not column_rules:
        return ResultMasker(Masker(rules, hmac_key), {}, copy_out_refused=False)
    tables = await table_names(upstream)
    globs = {pattern.rsplit(".", 1)[-1] for rule in rules for pattern in rule.columns}
    columns = await column_names(upstream, globs)
    return ResultMasker(Masker(rules, hmac_key), tables, True, columns)


async def table_names(upstream: Upstream) -> dict[int, str]:
    """OID -> ``schema.table`` of every relation the target user can see."""
    names: dict[int, str] = {}
    for oid, schema, table in await _catalog_rows(upstream, TABLE_NAMES_SQL, 3):
        names[int(oid)] = f"{schema.decode()}.{table.decode()}"
    return names


async def column_names(upstream: Upstream, globs: set[str]) -> dict[tuple[int, int], str]:
    """(table OID, attribute number) -> name of every table column whose name one of
    the column ``globs`` covers (``*`` covers any name already, so it asks nothing)."""
    wanted = sorted(glob for glob in globs if glob != "*")
    if not wanted:
        return {}
    names: dict[tuple[int, int], str] = {}
    for oid, number, name in await _catalog_rows(upstream, _column_names_sql(wanted), 3):
        names[(int(oid), int(number))] = name.decode()
    return names


def _column_names_sql(globs: list[str]) -> str:
    """The catalog query for the columns ``globs`` name, each glob as an ILIKE pattern
    in an escape string (read the same whatever standard_conforming_strings says)."""
    likes = []
    for glob in globs:
        like = "".join(
            "%" if c == "*" else "_" if c == "?" else "\\" + c if c in "%_\\" else c for c in glob
        )
        likes.append("E'" + like.replace("\\", "\\\\").replace("'", "\\'") + "'")
    return (
        "select a.attrelid, a.attnum, a.attname from pg_catalog.pg_attribute a"
        " join pg_catalog.pg_class c on c.oid = a.attrelid"
        " where c.relkind in ('r', 'v', 'm', 'p', 'f') and a.attnum > 0"
        f" and not a.attisdropped and a.attname ilike any (array[{', '.join(likes)}])"
    )


async def _catalog_rows(upstream: Upstream, sql: str, width: int) -> list[list[bytes]]:
    """The rows of a catalog query on the session's target connection; raises
    :class:`MaskingError` if the target refuses it, ``ProtocolError`` on a bad row."""
    await upstream.stream.send_all(fe.Query(sql).encode())
    rows: list[list[bytes]] = []
    error: str | None = None
    while True:
        message = await read_message(upstream.stream, upstream.codec)
        if isinstance(message, be.DataRow):
            values = message.values()
            if len(values) != width or any(value is None for value in values):
                raise ProtocolError("the catalog returned an incomplete row")
            rows.append([value for value in values if value is not None])
        elif isinstance(message, be.ErrorResponse):
            error = message.named().get("message", "error")
        elif isinstance(message, be.ReadyForQuery):
            if error is not None:
                raise MaskingError(f"the catalog could not be read: {error}")
            return rows
