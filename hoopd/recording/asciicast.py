"""A recorded terminal channel as an asciicast v2 file (what ``asciinema play`` plays).

Reads the records an SSH session writes for a channel with a pty (docs/ssh.md):
``channel_open`` (with ``pty``: ``term``, ``cols``, ``rows``), ``stdout`` and
``stderr`` (``data`` bytes), ``window`` (``cols``, ``rows``). The output is the
header line, then one ``[seconds, "o", text]`` event per output chunk and one
``[seconds, "r", "COLSxROWS"]`` per resize, times relative to the channel's
opening. Output is decoded as UTF-8 incrementally, so a character split across
two chunks comes out whole; bytes that are not UTF-8 become U+FFFD. What the
recording holds is what was shown: masked output stays masked.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from hoopd.recording.frames import Record


class NoTerminal(LookupError):
    """The session has no channel with a terminal (or not the one asked for)."""


def asciicast_lines(
    records: Iterable[Record], channel: int | None = None, title: str | None = None
) -> Iterator[str]:
    """The asciicast v2 lines of ``channel`` (default: the first channel with a pty).

    Raises :class:`NoTerminal` (before yielding anything) when there is no such
    channel.
    """
    chosen: int | None = None
    start = offset = 0.0
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    started = False
    for record in records:
        body = record.body
        if record.kind == "channel_open" and not started:
            pty = body.get("pty")
            number = body.get("channel")
            if isinstance(pty, dict) and (channel is None or number == channel):
                chosen, start, started = number, record.time, True
                yield _header(pty, record.time, title or str(body.get("command") or ""))
            continue
        if not started or body.get("channel") != chosen:
            continue
        # Capped: the difference of two (edited) times can overflow to infinity,
        # which JSON cannot express.
        offset = round(min(max(0.0, record.time - start), sys.float_info.max), 6)
        if record.kind in ("stdout", "stderr"):
            data = body.get("data")
            if isinstance(data, bytes | bytearray):
                text = decoder.decode(bytes(data))
                if text:
                    yield json.dumps([offset, "o", text], ensure_ascii=False)
        elif record.kind == "window":
            yield json.dumps([offset, "r", f"{body.get('cols')}x{body.get('rows')}"])
    if not started:
        wanted = "a terminal" if channel is None else f"channel {channel} with a terminal"
        raise NoTerminal(f"the session has no {wanted}")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield json.dumps([offset, "o", tail], ensure_ascii=False)


def _header(pty: dict[str, Any], when: float, title: str) -> str:
    header: dict[str, Any] = {
        "version": 2,
        "width": _size(pty.get("cols"), 80),
        "height": _size(pty.get("rows"), 24),
        "timestamp": int(when),
        "env": {"TERM": str(pty.get("term") or "")},
    }
    if title:
        header["title"] = title
    return json.dumps(header, ensure_ascii=False)


def _size(value: object, default: int) -> int:
    """A terminal dimension: ``value`` as a positive integer, else ``default``."""
    if not isinstance(value, int | float | str):
        return default
    try:
        size = int(value)
    except (ValueError, OverflowError):  # "abc", NaN, infinity
        return default
    return size if size > 0 else default
