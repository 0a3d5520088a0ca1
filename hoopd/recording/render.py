"""How recordings look on a terminal and as JSON lines.

Human output escapes control characters (other than newline and tab) in
everything taken from a recording, so SQL cannot carry terminal escape sequences
that would rewrite what an auditor sees. JSON output is complete and exact:
one object per line, bytes as ``{"base64": ...}``, hashes as hex strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final

from hoopd.recording.frames import Record
from hoopd.recording.jsonable import dumps
from hoopd.recording.render_channels import CHANNEL_KINDS, channel_line, stream_key, stream_lines
from hoopd.recording.summary import SessionSummary

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_INDENT = " " * 25


def clean(text: str) -> str:
    """``text`` with control and bidi-override characters shown as ``\\uXXXX``."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def timestamp(when: float | None, *, millis: bool = False) -> str:
    if when is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(when, UTC)
    except (OverflowError, OSError, ValueError):
        # Outside the calendar: only an edited recording holds such a time.
        return f"(time {when!r})"
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if millis
        else moment.strftime("%Y-%m-%d %H:%M:%S")
    )


# -------------------------------------------------------------------- sessions


def session_table(sessions: Sequence[SessionSummary]) -> Iterator[str]:
    header = (
        "ID",
        "STARTED (UTC)",
        "ENDED (UTC)",
        "IDENTITY",
        "CONNECTION",
        "CLIENT",
        "STATEMENTS",
    )
    rows = [header] + [
        (
            s.session_id,
            timestamp(s.started_at),
            timestamp(s.ended_at) if s.state == "ended" else s.state,
            clean(chain_text(s.identity)),
            clean(s.connection),
            clean(s.client_addr),
            "-" if s.statement_count is None else str(s.statement_count),
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def session_json(summary: SessionSummary) -> str:
    return dumps(summary.to_json())


NO_IDENTITY: Final = "(no identity)"
"""How a session that never had an identity (refused before auth) is named."""


def chain_of(identity: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The root subject, then each actor in hop order (the one acting now last).

    Records written before delegation (no ``actor_chain``) give the subject alone;
    a session without an identity gives :data:`NO_IDENTITY`.
    """
    if not identity:
        return (NO_IDENTITY,)
    actors = identity.get("actor_chain")
    hops = tuple(map(str, actors)) if isinstance(actors, list | tuple) else ()
    return (str(identity.get("subject") or "-"), *hops)


def chain_text(identity: Mapping[str, Any] | None) -> str:
    """``alice > ci-job > sub-agent``; ``-`` when there is no identity."""
    return " > ".join(chain_of(identity)) if identity else "-"


def replay_header(summary: SessionSummary) -> str:
    """The first line of ``hoopd replay``: the session, its state and who ran it."""
    return clean(
        f"session {summary.session_id} ({summary.state}) {chain_text(summary.identity)}"
        f" on {summary.connection} ({summary.protocol})"
    )


# ------------------------------------------------------------ sessions --tree


@dataclass(slots=True)
class ChainNode:
    """One position in a delegation chain: the sessions opened from exactly this
    chain, and the actors this position handed a token to."""

    chain: tuple[str, ...]
    sessions: list[SessionSummary] = field(default_factory=list)
    delegates: dict[str, ChainNode] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.chain[-1]


def session_tree(sessions: Iterable[SessionSummary]) -> list[ChainNode]:
    """Sessions grouped by who started whom: one node per root subject (sorted by
    name), each actor hop under the hop before it (sorted by name), sessions under
    the position that opened them (in order of start), whatever their protocol."""
    roots: dict[str, ChainNode] = {}
    for summary in sorted(sessions, key=lambda s: (s.started_at, s.session_id)):
        chain = chain_of(summary.identity)
        node = roots.setdefault(chain[0], ChainNode(chain[:1]))
        for depth in range(1, len(chain)):
            node = node.delegates.setdefault(chain[depth], ChainNode(chain[: depth + 1]))
        node.sessions.append(summary)
    return [roots[name] for name in sorted(roots)]


def tree_lines(roots: Sequence[ChainNode]) -> Iterator[str]:
    """The tree for people: a root subject at the margin, each hop two columns in
    and marked ``>``, each session under the hop that opened it."""
    for root in roots:
        yield from _node_lines(root, "")


def _node_lines(node: ChainNode, indent: str) -> Iterator[str]:
    marker = "" if len(node.chain) == 1 else "> "
    yield clean(f"{indent}{marker}{node.name}")
    inner = indent + "  "
    for s in node.sessions:
        yield clean(
            f"{inner}{s.session_id}  {s.connection} ({s.protocol})"
            f"  {timestamp(s.started_at)} .. {_ending(s)}"
        )
    for name in sorted(node.delegates):
        yield from _node_lines(node.delegates[name], inner)


def _ending(s: SessionSummary) -> str:
    if s.state == "ended":
        return timestamp(s.ended_at)
    return "live" if s.state == "active" else s.state


def tree_json(roots: Sequence[ChainNode]) -> Iterator[str]:
    """One JSON object per root subject: ``{"name", "chain", "sessions", "delegates"}``,
    ``sessions`` as ``hoopd sessions --json`` writes them, ``delegates`` the same
    kind of object for each actor the position handed a token to."""
    for root in roots:
        yield dumps(_node_json(root))


def _node_json(node: ChainNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "chain": list(node.chain),
        "sessions": [s.to_json() for s in node.sessions],
        "delegates": [_node_json(node.delegates[name]) for name in sorted(node.delegates)],
    }


# ---------------------------------------------------------------------- replay


def record_json(record: Record) -> str:
    return dumps(
        {
            "session_id": record.session_id,
            "seq": record.seq,
            "time": record.time,
            "kind": record.kind,
            "body": record.body,
            "prev_hash": record.prev_hash.hex(),
            "hash": record.hash.hex(),
            "hash_ok": record.hash_ok,
        }
    )


def replay_lines(records: Iterable[Record]) -> Iterator[str]:
    """A readable transcript: one entry per record, results under their statement,
    a channel's consecutive data as its text (:mod:`.render_channels`)."""
    for key, run in groupby(records, key=stream_key):
        if key is not None:
            yield from stream_lines(run, _stamp, _INDENT, clean)
        else:
            for record in run:
                yield from _record_lines(record)


def _stamp(when: float) -> str:
    return timestamp(when, millis=True) + "  "


def _record_lines(record: Record) -> Iterator[str]:
    body = record.body
    prefix = timestamp(record.time, millis=True) + "  "
    if record.kind in ("result", "notice"):
        yield _INDENT + "-> " + _number(body) + _result(record.kind, body)
    elif record.kind == "statement" and "kind" in body and "sql" not in body:
        # A host command (SSH): its kind, then the command line or operation.
        yield prefix + "command " + _number(body) + clean(f"[{body.get('kind')}]")
        yield _INDENT + clean(str(body.get("text", "")))
        paths = _items(body.get("paths"))
        if paths:
            yield _INDENT + clean("paths: " + ", ".join(map(str, paths)))
        if body.get("destination"):
            yield _INDENT + clean(f"destination: {body['destination']}")
        yield from _verdict_lines(body)
    elif record.kind == "statement":
        heading = "statement " + _number(body) + _classification(body.get("classification"))
        yield prefix + heading.rstrip()
        yield from _sql_lines(body)
        yield from _verdict_lines(body)
    elif record.kind == "session_start":
        yield prefix + "session start " + _start(body)
    elif record.kind == "auth":
        yield prefix + "auth " + _auth(body)
    elif record.kind == "session_end":
        yield prefix + f"session end ({clean(str(body.get('reason')))})"
    elif record.kind in CHANNEL_KINDS:
        yield prefix + channel_line(record, clean)
    else:
        yield prefix + clean(f"{record.kind} {dumps(body)}")


def _items(value: object) -> list[Any]:
    """The items of a field that holds a list; any other value, unless empty, is one item."""
    if isinstance(value, list | tuple):
        return list(value)
    return [value] if value else []


def _number(body: Mapping[str, Any]) -> str:
    """``#N `` for records that carry the command's number in the session (results
    of pipelined commands arrive after several statements)."""
    number = body.get("command")
    return f"#{number} " if isinstance(number, int) else ""


def _start(body: Mapping[str, Any]) -> str:
    text = (
        f"connection {body.get('connection')} ({body.get('protocol')})"
        f" from {body.get('client_addr')}"
    )
    identity = body.get("identity")
    if isinstance(identity, Mapping):
        text += " as " + _identity(identity)
    return clean(text)


def _identity(identity: Mapping[str, Any]) -> str:
    text = chain_text(identity)
    groups = _items(identity.get("groups"))
    if groups:
        text += " (groups " + ", ".join(map(str, groups)) + ")"
    if identity.get("issuer"):
        text += f" issuer {identity.get('issuer')}"
    if identity.get("token_id"):
        text += f" token {identity.get('token_id')}"
    return text


def _auth(body: Mapping[str, Any]) -> str:
    text = str(body.get("outcome"))
    identity = body.get("identity")
    if isinstance(identity, Mapping):
        text += " " + _identity(identity)
    extra = {k: v for k, v in body.items() if k not in ("outcome", "identity")}
    if extra:
        text += " " + dumps(extra)
    return clean(text)


def _classification(value: object) -> str:
    if not isinstance(value, Mapping):
        return ""
    parts = [",".join(map(str, _items(value.get("kinds")))) or "?"]
    for label, key in (("reads", "tables_read"), ("writes", "tables_written")):
        if tables := _items(value.get(key)):
            parts.append(f"{label} " + ", ".join(map(str, tables)))
    if value.get("where_absent"):
        parts.append("no WHERE")
    if value.get("opaque"):
        parts.append("opaque")
    if value.get("parse_error"):
        parts.append(f"parse error: {value['parse_error']}")
    return clean("[" + "; ".join(parts) + "]")


def _sql_lines(body: Mapping[str, Any]) -> Iterator[str]:
    for line in clean(str(body.get("sql", ""))).splitlines() or [""]:
        yield _INDENT + line
    origin = body.get("origin")
    names = [f"{k} {body[k]!s}" for k in ("statement_name", "portal_name") if body.get(k)]
    if (origin and origin != "query") or names:
        yield _INDENT + clean(f"({', '.join([f'via {origin}', *names])})")
    params = _items(body.get("params"))
    if params:
        shown = ", ".join(f"${i} = {_param(v)}" for i, v in enumerate(params, 1))
        yield _INDENT + "params: " + clean(shown)


def _verdict_lines(body: Mapping[str, Any]) -> Iterator[str]:
    """A line for a command that did not go through as sent: refused, or approved."""
    verdict = body.get("verdict")
    if isinstance(verdict, Mapping) and verdict.get("action") in ("deny", "approve"):
        rule = verdict.get("rule")
        by = (
            f" by rule {rule}"
            if rule
            else (" by the token's scope" if verdict.get("scope") else "")
        )
        message = verdict.get("message")
        text = f"{verdict.get('action')}{by}" + (f": {message}" if message else "")
        yield _INDENT + clean(text)


def _param(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "\\x" + value.hex() + " (binary)"
    return "'" + str(value).replace("'", "''") + "'"


def _result(kind: str, body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if kind == "notice" or isinstance(error, Mapping):
        fields = error if isinstance(error, Mapping) else body
        label = "ERROR" if kind == "result" else "NOTICE"
        severity = fields.get("severity") or label
        code = f" {fields['code']}" if fields.get("code") else ""
        return clean(f"{severity}{code}: {fields.get('message', '')}")
    text = str(body.get("tag") or "(no tag)")
    rows = body.get("rows")
    if rows is not None:
        text += f" ({rows} row{'' if rows == 1 else 's'})"
    return clean(text)
