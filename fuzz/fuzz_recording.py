"""Coverage-guided fuzzing of reading recordings back (``hoopd.recording``) with atheris.

The input is the bytes of a journal segment. It is written as the only segment of
a data dir without an index and read the way the commands read a recording: the
scan for frames and damage (``SegmentView``), ``verify`` (``hoopd audit verify``),
the session list as a table, a tree and JSON (``hoopd sessions``), and each
session's replay as text, JSON and asciicast (``hoopd replay``). Every input is
read twice: as it is, and with each frame-shaped stretch given its correct hash,
as someone editing the journal would do, so that mutated bodies get past the hash
check and reach the renderers.

Anything escaping other than ``NoTerminal`` (asciicast of a session without a
terminal) is a bug, and so is any of these broken invariants: the records and
unreadable stretches the reader returns cover the segment in order, byte for byte;
``verify`` counts exactly the records the reader decodes and reports every
unreadable stretch as ``corrupt``; a replay transcript carries no control
characters; asciicast lines are strict JSON.

    python fuzz/fuzz_recording.py -max_total_time=60 fuzz/corpus-recording
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    from hoopd.recording import render
    from hoopd.recording.asciicast import NoTerminal, asciicast_lines
    from hoopd.recording.cli import verify_lines
    from hoopd.recording.frames import (
        HASH_HEADER,
        HASH_SIZE,
        LENGTH,
        PAYLOAD_MAGIC,
        TRAILER_SIZE,
        Record,
    )
    from hoopd.recording.reader import Unreadable, list_sessions, read_session, segment_entries
    from hoopd.recording.segments import journal_dir, segment_name
    from hoopd.recording.verify import verify

#: Sessions replayed per input: enough for interleaved sessions, bounded for speed.
_REPLAYED = 4

_DATA_DIR = Path(tempfile.mkdtemp(prefix="fuzz-recording-"))
atexit.register(shutil.rmtree, _DATA_DIR, True)
journal_dir(_DATA_DIR).mkdir()
_SEGMENT = journal_dir(_DATA_DIR) / segment_name(1)


def _rehashed(data: bytes) -> bytes:
    """``data`` with the stored hash of every frame-shaped stretch recomputed, found
    by stepping from frame to frame by the length prefixes (and byte by byte over
    what is not a frame)."""
    out = bytearray(data)
    pos = 0
    while pos + 4 <= len(out):
        (length,) = LENGTH.unpack_from(out, pos)
        end = pos + 4 + length
        if (
            length > len(PAYLOAD_MAGIC) + TRAILER_SIZE
            and end <= len(out)
            and out[pos + 4 : pos + 4 + len(PAYLOAD_MAGIC)] == PAYLOAD_MAGIC
            and out[end - TRAILER_SIZE : end - HASH_SIZE] == HASH_HEADER
        ):
            out[end - HASH_SIZE : end] = hashlib.sha256(out[pos + 5 : end - TRAILER_SIZE]).digest()
            pos = end
        else:
            pos += 1
    return bytes(out)


def _strict_json(line: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in asciicast output: {line}")

    return json.loads(line, parse_constant=refuse)


def _check(content: bytes) -> None:
    _SEGMENT.write_bytes(content)

    entries = list(segment_entries(1, _SEGMENT))
    position = 0
    for entry in entries:
        if entry.offset != position:
            raise AssertionError(f"the reader skipped or reread bytes at {position}: {entry}")
        if isinstance(entry, Unreadable):
            position += entry.length
        else:
            position += 4 + LENGTH.unpack_from(content, entry.offset)[0]
    if position != len(content):
        raise AssertionError(f"the reader stopped at {position} of {len(content)} bytes")

    report = verify(_DATA_DIR)
    verify_lines(report)
    records = sum(isinstance(entry, Record) for entry in entries)
    unreadable = len(entries) - records
    corrupt = sum(b.problem == "corrupt" for b in report.breaks)
    if (report.records, corrupt) != (records, unreadable):
        raise AssertionError(
            f"verify counted {report.records} records and {corrupt} corrupt stretches;"
            f" the reader found {records} and {unreadable}"
        )

    sessions = list_sessions(_DATA_DIR)
    list(render.session_table(sessions))
    for summary in sessions:
        render.session_json(summary)
    roots = render.session_tree(sessions)
    list(render.tree_lines(roots))
    list(render.tree_json(roots))

    for summary in sessions[:_REPLAYED]:
        render.replay_header(summary)
        session = list(read_session(_DATA_DIR, summary.session_id))
        for line in render.replay_lines(session):
            if render.clean(line) != line:
                raise AssertionError(f"a control character reached the transcript: {line!r}")
        for record in session:
            _strict_json(render.record_json(record))
        for channel in (None, 0):
            try:
                for line in asciicast_lines(session, channel, "fuzz"):
                    _strict_json(line)
            except NoTerminal:
                pass


def TestOneInput(data: bytes) -> None:
    _check(data)
    rehashed = _rehashed(data)
    if rehashed != data:
        _check(rehashed)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
