"""Journal segment files: where they live, how they are named, how they are read.

Segments are ``<data_dir>/journal/segment-NNNNNNNN.hjl``, numbered from 1 with no
gaps; a segment is only ever appended to, and only by the gateway that created it.
Reading walks frame by frame from the start of a file (lengths are the only way to
find frame boundaries, which is what stops a frame hidden inside another frame's
body from being read as a record). After damage, reading resumes at the next
offset that holds a complete frame whose hash checks out.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hoopd.recording.frames import (
    HASH_HEADER,
    HASH_SIZE,
    LENGTH,
    MAX_PAYLOAD,
    PAYLOAD_MAGIC,
    TRAILER_SIZE,
    payload_hash_ok,
    payload_shape_ok,
)

JOURNAL_DIR: Final = "journal"
_NAME = re.compile(r"segment-(\d{8})\.hjl")
_MIN_PAYLOAD: Final = len(PAYLOAD_MAGIC) + TRAILER_SIZE + 1


def journal_dir(data_dir: Path) -> Path:
    return data_dir / JOURNAL_DIR


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.hjl"


def list_segments(data_dir: Path) -> list[tuple[int, Path]]:
    """``(number, path)`` of every segment file, lowest number first."""
    directory = journal_dir(data_dir)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class FrameRef:
    """A structurally complete frame: payload is ``data[start:end]``."""

    offset: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes that are not frames: ``length`` bytes from ``offset``.

    ``torn_tail`` is set when they run to the end of the file and begin like a
    frame whose write was cut short (what a power loss or a full disk leaves).
    """

    offset: int
    length: int
    torn_tail: bool


class SegmentView:
    """A read-only view of one segment file (memory-mapped; use as a context manager)."""

    def __init__(self, number: int, path: Path) -> None:
        self.number = number
        self.path = path
        self._map: mmap.mmap | None = None
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size:
                self._map = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        self.size = size

    def __enter__(self) -> SegmentView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def payload(self, ref: FrameRef) -> bytes:
        assert self._map is not None
        return self._map[ref.start : ref.end]

    def startswith(self, ref: FrameRef, prefix: bytes) -> bool:
        assert self._map is not None
        return self._map[ref.start : ref.start + len(prefix)] == prefix

    def frames(self) -> Iterator[FrameRef | Damage]:
        """Every frame in file order, with the damaged stretches between them."""
        data = self._map
        if data is None:
            return
        size = self.size
        pos = 0
        while pos < size:
            ref = self._frame_at(pos)
            if ref is not None:
                yield ref
                pos = ref.end
                continue
            resume = self._resync(pos + 1)
            torn = resume == size and self._looks_torn(pos)
            yield Damage(pos, resume - pos, torn)
            pos = resume

    def _frame_at(self, pos: int) -> FrameRef | None:
        data = self._map
        assert data is not None
        if self.size - pos < 4:
            return None
        (length,) = LENGTH.unpack_from(data, pos)
        start, end = pos + 4, pos + 4 + length
        if length < _MIN_PAYLOAD or length > MAX_PAYLOAD or end > self.size:
            return None
        if data[start : start + len(PAYLOAD_MAGIC)] != PAYLOAD_MAGIC:
            return None
        if data[end - TRAILER_SIZE : end - HASH_SIZE] != HASH_HEADER:
            return None
        return FrameRef(pos, start, end)

    def _resync(self, pos: int) -> int:
        """The offset of the next frame that is complete and hashes correctly, else EOF."""
        data = self._map
        assert data is not None
        while True:
            found = data.find(PAYLOAD_MAGIC, pos + 4)
            if found < 0:
                return self.size
            candidate = found - 4
            ref = self._frame_at(candidate)
            if ref is not None:
                payload = data[ref.start : ref.end]
                if payload_shape_ok(payload) and payload_hash_ok(payload):
                    return candidate
            pos = candidate + 1

    def _looks_torn(self, pos: int) -> bool:
        data = self._map
        assert data is not None
        if self.size - pos < 4:
            return True
        (length,) = LENGTH.unpack_from(data, pos)
        head = data[pos + 4 : pos + 4 + len(PAYLOAD_MAGIC)]
        incomplete = pos + 4 + length > self.size
        return incomplete and length <= MAX_PAYLOAD and PAYLOAD_MAGIC.startswith(head)


def last_frame_hash(path: Path) -> bytes | None:
    """The hash stored at the very end of a segment, if it ends like a complete frame.

    Reads only the last bytes of the file (no scan); returns None for an empty file
    or one whose tail is not a frame trailer (a torn or damaged final write).
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < 4 + _MIN_PAYLOAD:
            return None
        file.seek(size - TRAILER_SIZE)
        tail = file.read(TRAILER_SIZE)
    if tail[: len(HASH_HEADER)] != HASH_HEADER:
        return None
    return tail[len(HASH_HEADER) :]
