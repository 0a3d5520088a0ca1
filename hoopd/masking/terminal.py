"""Splitting a terminal byte stream into visible text and escape sequences.

Sans-IO and incremental: :meth:`TerminalSplitter.feed` takes bytes in chunks of any
size and returns what they contain, in order, as ``str`` (visible text) and
``bytes`` (escape sequence bytes, to pass through untouched). A sequence or a UTF-8
character split across chunks comes out the same as if it had arrived whole.

Recognised sequences (ECMA-48, as VT terminals and xterm read them):

- CSI: ``ESC [``, parameter and intermediate bytes (0x20-0x3F), a final byte
  (0x40-0x7E);
- strings: ``ESC ]`` (OSC), ``ESC P`` (DCS), ``ESC X``, ``ESC ^``, ``ESC _``, up to
  BEL or ``ESC \\``;
- the rest: ``ESC``, intermediate bytes (0x20-0x2F), a final byte (0x30-0x7E), such
  as ``ESC 7`` or ``ESC ( B``.

A byte a sequence cannot hold (a C0 control inside CSI, say) ends it, as on a
terminal, and is read as ordinary output. Bytes that are not UTF-8 come out as the
lone surrogates of Python's ``surrogateescape`` error handler, so that
``text.encode("utf-8", "surrogateescape")`` gives them back unchanged.
"""

from __future__ import annotations

import codecs
from enum import Enum, auto
from typing import Final

ESC: Final = 0x1B
_BEL: Final = 0x07
_STRING_INTRODUCERS: Final = frozenset(b"]PX^_")


class _State(Enum):
    GROUND = auto()
    ESCAPE = auto()  # after ESC
    INTERMEDIATE = auto()  # after ESC and 0x20-0x2F bytes
    CSI = auto()
    STRING = auto()  # OSC, DCS, SOS, PM, APC: up to BEL or ESC \
    STRING_ESCAPE = auto()  # ESC inside a string: ESC \ ends it


def _string_byte(byte: int) -> bool:
    # Printable ASCII and UTF-8 (window titles, hyperlinks). A C0 control other
    # than BEL and ESC (a line break, say) aborts the string, so a missing
    # terminator cannot hide the rest of the output from the detectors.
    return byte >= 0x20


Piece = str | bytes
"""Visible text (``str``) or the bytes of an escape sequence, or part of one."""


class TerminalSplitter:
    """Visible text and escape sequences of a byte stream, chunk by chunk.

    Concatenating the ``bytes`` pieces and the ``surrogateescape`` encoding of the
    ``str`` pieces of every :meth:`feed` and the final :meth:`flush` gives back
    the input exactly. Visible text is only returned once it is whole: up to three
    bytes of a UTF-8 character are kept until the rest arrives (or it turns out not
    to be UTF-8). Escape bytes are returned as soon as they arrive. Never raises.
    """

    __slots__ = ("_decoder", "_state")

    def __init__(self) -> None:
        self._state = _State.GROUND
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def feed(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        i = 0
        n = len(data)
        while i < n:
            if self._state is _State.GROUND:
                j = data.find(ESC, i)
                if j < 0:
                    j = n
                text = self._decoder.decode(data[i:j])
                if j < n:
                    # An escape interrupts a UTF-8 character: its bytes so far are
                    # not UTF-8, as on a terminal.
                    text += self._decoder.decode(b"", final=True)
                    self._decoder.reset()
                if text:
                    pieces.append(text)
                if j < n:
                    pieces.append(b"\x1b")
                    self._state = _State.ESCAPE
                    j += 1
                i = j
                continue
            start = i
            while i < n and self._in_escape():
                if not self._step(data[i]):
                    break  # the byte ended the sequence without belonging to it
                i += 1
            if i > start:
                pieces.append(data[start:i])
        return _joined(pieces)

    def flush(self) -> list[Piece]:
        """The end of the stream: an unfinished UTF-8 character comes out as raw
        bytes; the splitter starts over."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        self._state = _State.GROUND
        return [text] if text else []

    def _in_escape(self) -> bool:
        return self._state is not _State.GROUND

    def _step(self, byte: int) -> bool:
        """Moves the escape state machine by one byte; false when ``byte`` is not
        part of the sequence (the state is then GROUND and the byte is read again)."""
        state = self._state
        if state is _State.ESCAPE:
            if byte == ord("["):
                self._state = _State.CSI
            elif byte in _STRING_INTRODUCERS:
                self._state = _State.STRING
            elif 0x20 <= byte <= 0x2F:
                self._state = _State.INTERMEDIATE
            elif byte == ESC:
                pass  # a lone ESC, and a new sequence starts
            elif 0x30 <= byte <= 0x7E:
                self._state = _State.GROUND
            else:
                self._state = _State.GROUND
                return False
        elif state is _State.INTERMEDIATE:
            if byte == ESC:
                self._state = _State.ESCAPE
            elif 0x30 <= byte <= 0x7E:
                self._state = _State.GROUND
            elif not 0x20 <= byte <= 0x2F:
                self._state = _State.GROUND
                return False
        elif state is _State.CSI:
            if byte == ESC:
                self._state = _State.ESCAPE
            elif 0x40 <= byte <= 0x7E:
                self._state = _State.GROUND
            elif not 0x20 <= byte <= 0x3F:
                self._state = _State.GROUND
                return False
        elif state is _State.STRING:
            if byte == ESC:
                self._state = _State.STRING_ESCAPE
            elif byte == _BEL:
                self._state = _State.GROUND
            elif not _string_byte(byte):
                self._state = _State.GROUND
                return False
        elif state is _State.STRING_ESCAPE:
            if byte == ord("\\"):
                self._state = _State.GROUND
            else:
                # The string ended without its terminator; this ESC starts anew.
                self._state = _State.ESCAPE
                return self._step(byte)
        return True


def _joined(pieces: list[Piece]) -> list[Piece]:
    """Adjacent pieces of one kind merged, so callers see few, larger pieces."""
    out: list[Piece] = []
    for piece in pieces:
        if out and type(out[-1]) is type(piece):
            out[-1] = out[-1] + piece  # type: ignore[operator]
        else:
            out.append(piece)
    return out
