"""Command lines typed into an interactive shell, reconstructed from its keystrokes.

A small sans-IO model of a terminal line editor, fed the bytes a client sends on a
``shell`` channel (:func:`.relay._input`); each Enter gives a :class:`ShellLine`,
recorded as a ``shell_line`` audit event next to the raw ``stdin`` record.

This is best effort, not a boundary: the model cannot see the shell's state
(history, completion, the cursor, a program other than the shell reading the
terminal, a password prompt), so a line may differ from what the shell ran. The
raw ``stdin`` bytes stay the record of truth, and the lines are never judged by
policy.

Guarantees:

- :meth:`ShellLines.feed` never raises, whatever the bytes (binary, invalid
  UTF-8, unfinished escape sequences);
- the lines depend only on the bytes, not on how they were split into chunks:
  feeding a stream in any chunking gives the same lines as feeding it at once;
- a line the model may have got wrong is marked ``uncertain``: one with an escape
  sequence (arrow keys, history recall, Home/End, bracketed paste markers, Alt-key),
  Tab (completion), a control key the model does not follow (Ctrl-A, Ctrl-R, ...),
  invalid UTF-8 (kept as U+FFFD) or more than :data:`MAX_LINE` characters (the rest
  dropped); a line without those is exactly what the keys below produce;
- memory is bounded: at most :data:`MAX_LINE` characters are held per channel.

Keys followed: printable text (UTF-8, any number of bytes per character, split
anywhere) appends; backspace (0x7f, 0x08) deletes the last character; Ctrl-U
clears the line; Ctrl-W deletes the last whitespace-delimited word and the spaces
after it; Ctrl-C clears the line without a record; carriage return or newline ends
the line, which is given if it is non-empty or uncertain (an empty uncertain line
may be a recalled command). Ctrl-D on an empty line and Ctrl-L change nothing.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

#: The most characters held for one line; more makes the line uncertain.
MAX_LINE = 16 * 1024

_ESC = "\x1b"
_BACKSPACES = frozenset("\x7f\x08")
_ENTER = frozenset("\r\n")
_CTRL_C, _CTRL_D, _CTRL_L, _CTRL_U, _CTRL_W, _TAB = "\x03", "\x04", "\x0c", "\x15", "\x17", "\t"

# Escape sequence states.
_TEXT, _AFTER_ESC, _CSI, _SS3 = 0, 1, 2, 3


@dataclass(frozen=True)
class ShellLine:
    """One line ended by Enter: ``line`` as the model rebuilt it; ``uncertain`` when
    the shell's line may have differed (see the module's guarantees)."""

    line: str
    uncertain: bool = False

    def record(self, channel: int) -> dict[str, Any]:
        """The ``shell_line`` record's body: ``channel``, ``line``, and
        ``uncertain: true`` only when uncertain."""
        body: dict[str, Any] = {"channel": channel, "line": self.line}
        if self.uncertain:
            body["uncertain"] = True
        return body


class ShellLines:
    """The line editor model for one channel's keystrokes (see the module)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._chars: list[str] = []
        self._uncertain = False
        self._state = _TEXT

    def feed(self, data: bytes) -> list[ShellLine]:
        """The lines ended (by Enter) in ``data``, in order; never raises."""
        lines: list[ShellLine] = []
        # errors="replace": invalid UTF-8 becomes U+FFFD; a character split across
        # chunks is held by the decoder until its last byte arrives.
        for char in self._decoder.decode(data):
            line = self._key(char)
            if line is not None:
                lines.append(line)
        return lines

    def _key(self, char: str) -> ShellLine | None:
        if self._state != _TEXT and self._in_escape(char):
            return None
        if char in _ENTER:
            return self._end()
        if char == _ESC:
            self._state = _AFTER_ESC
            self._uncertain = True
        elif char in _BACKSPACES:
            if self._chars:
                self._chars.pop()
        elif char == _CTRL_U:
            self._chars.clear()
        elif char == _CTRL_W:
            self._delete_word()
        elif char == _CTRL_C:
            self._reset()
        elif char == _TAB:
            self._uncertain = True
        elif (char == _CTRL_D and not self._chars) or char == _CTRL_L:
            pass
        elif _is_control(char):
            self._uncertain = True
        else:
            if char == "\ufffd":  # invalid UTF-8 (or a typed U+FFFD): not the bytes sent
                self._uncertain = True
            self._append(char)
        return None

    def _in_escape(self, char: str) -> bool:
        """Consume ``char`` as part of an escape sequence; False when it is not one
        (the sequence is over and ``char`` is a key of its own)."""
        code = ord(char)
        if self._state == _AFTER_ESC:
            if char == "[":
                self._state = _CSI
            elif char == "O":
                self._state = _SS3
            elif char == _ESC:
                pass  # ESC ESC: a new sequence begins
            elif 0x20 <= code <= 0x7E:
                self._state = _TEXT  # Alt-key, or a two-character sequence
            else:
                self._state = _TEXT
                return False
            return True
        if self._state == _CSI:
            if 0x20 <= code <= 0x3F:  # parameters and intermediates
                return True
            self._state = _TEXT
            return 0x40 <= code <= 0x7E  # the final byte ends it
        # SS3: one final character.
        self._state = _TEXT
        return 0x20 <= code <= 0x7E

    def _end(self) -> ShellLine | None:
        line = ShellLine("".join(self._chars), self._uncertain)
        self._reset()
        return line if line.line or line.uncertain else None

    def _reset(self) -> None:
        self._chars.clear()
        self._uncertain = False

    def _append(self, char: str) -> None:
        if len(self._chars) < MAX_LINE:
            self._chars.append(char)
        else:
            self._uncertain = True

    def _delete_word(self) -> None:
        chars = self._chars
        while chars and chars[-1].isspace():
            chars.pop()
        while chars and not chars[-1].isspace():
            chars.pop()


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F
