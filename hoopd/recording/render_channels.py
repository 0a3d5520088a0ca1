"""How the records of channel-based sessions (SSH) read in a transcript.

A run of consecutive ``stdin``/``stdout``/``stderr`` records of one channel is shown
as the text it carried, one output line per line of text, each under a label naming
the stream and channel (``ch1 stdout | ...``); text is escaped as everywhere in
transcripts (:func:`hoopd.recording.render.clean`), so a recording cannot rewrite
the auditor's terminal. A run that is not text (a NUL byte, or not UTF-8: file
transfers, SFTP packets, compressed output) is summed up as its byte count instead;
``hoopd replay --json`` has every byte and ``--format asciicast`` plays a terminal
channel back with its timing. Opening, exit status or signal, window changes,
signals, typed lines and closing each get a line of their own.

Memory stays bounded whatever a run holds: text is printed in slices of at most
:data:`TEXT_SLICE` bytes, and binary runs are only counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from hoopd.recording.frames import Record

STREAMS: Final = frozenset({"stdin", "stdout", "stderr"})
"""Record kinds that carry a channel's bytes (``data``)."""

CHANNEL_KINDS: Final = frozenset(
    {"channel_open", "channel_close", "exit", "window", "signal", "shell_line"}
)
"""Other channel record kinds this module renders."""

TEXT_SLICE: Final = 1 << 20

_CARRIED: Final = ("to_target", "to_client")

Clean = Callable[[str], str]


def stream_key(record: Record) -> tuple[str, object] | None:
    """What consecutive records of one run share; None for a record outside any run."""
    if record.kind not in STREAMS:
        return None
    return (record.kind, record.body.get("channel"))


def stream_lines(
    run: Iterable[Record], stamp: Callable[[float], str], indent: str, clean: Clean
) -> Iterator[str]:
    """The lines of one run of data records (same kind and channel, in order),
    headed by ``stamp`` of the first record's time."""
    # A bytearray: a run of many small records (keystroke echoes) appends in place.
    pending = bytearray()
    binary = 0
    first = True
    for record in run:
        if first:
            yield stamp(record.time) + clean(f"ch{record.body.get('channel')} {record.kind}")
            first = False
        data = _data(record.body)
        if binary or b"\x00" in data:
            binary += len(pending) + len(data)
            pending.clear()
            continue
        pending += data
        if len(pending) > TEXT_SLICE:
            cut = pending.rfind(b"\n", 0, TEXT_SLICE) + 1 or TEXT_SLICE
            text, binary = _text(pending[:cut])
            if text is not None:
                yield from _text_lines(text, indent, clean)
                del pending[:cut]
            else:
                binary += len(pending) - cut
                pending.clear()
    if pending and not binary:
        text, binary = _text(pending)
        if text is not None:
            yield from _text_lines(text, indent, clean)
    if binary:
        yield indent + f"| ({binary} bytes, not text)"


def channel_line(record: Record, clean: Clean) -> str:
    """The text (after the timestamp) of a channel record that is not data."""
    body = record.body
    channel = f"ch{body.get('channel')} "
    kind = record.kind
    if kind == "channel_open":
        text = f"open [{body.get('type')}] {body.get('command', '')}"
        pty = body.get("pty")
        if isinstance(pty, Mapping):
            text += f" (pty {pty.get('term')} {pty.get('cols')}x{pty.get('rows')})"
        if body.get("destination"):
            text += f" to {body['destination']}"
    elif kind == "exit":
        if "signal" in body:
            text = f"exit signal {body['signal']}"
        else:
            status = body.get("status")
            text = "exit without a status" if status is None else f"exit status {status}"
        if body.get("refused"):
            text += " (refused)"
    elif kind == "window":
        text = f"window {body.get('cols')}x{body.get('rows')}"
    elif kind == "signal":
        text = f"signal {body.get('signal')}"
    elif kind == "shell_line":
        uncertain = " (uncertain)" if body.get("uncertain") else ""
        text = f"typed{uncertain}: {body.get('line', '')}"
    else:  # channel_close
        counts = [f"{body[k]} bytes {k.replace('_', ' ')}" for k in _CARRIED if k in body]
        text = "closed" + (f" ({', '.join(counts)})" if counts else "")
        if body.get("refused"):
            text += " (refused)"
    return clean(channel + text)


def _data(body: Mapping[str, Any]) -> bytes:
    data = body.get("data")
    return data if isinstance(data, bytes) else b""


def _text(data: bytes | bytearray) -> tuple[str | None, int]:
    """(the text, 0), or (None, its byte count) when ``data`` is not UTF-8."""
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        return None, len(data)


def _text_lines(text: str, indent: str, clean: Clean) -> Iterator[str]:
    for line in text.splitlines():
        yield indent + "| " + clean(line)
