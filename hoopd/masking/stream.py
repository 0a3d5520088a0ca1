"""Masking a byte stream (terminal output) that arrives in chunks of any size.

Sans-IO: :class:`StreamMasker` is fed bytes and returns bytes; it knows nothing of
SSH or sockets. See docs/masking.md, "Streams", for the guarantees and the latency
they cost.

How it works: escape sequences are taken out of the visible text (they pass through,
but detectors do not see them, so a colour change inside a card number does not hide
it). Of the visible text, everything is masked and sent at once except a *held tail*:
the shortest end of the text that could still become part of a match, or change one,
when more text arrives. Each detector states which tail that is (:data:`_TAILS`).
A cut is then checked against every detector's matches (:func:`_settled`) and
against the replacements next to it (:meth:`StreamMasker._after_last_edit`), so
that masking the text before the cut, and then the text after it behind the
released part of its line (up to :data:`CONTEXT` characters), gives exactly what
masking all of it gives.
Hence the output does not depend on how the input was chunked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from hoopd.masking.builtin import DETECTORS
from hoopd.masking.detector import Detector
from hoopd.masking.masker import Masker
from hoopd.masking.scanner import Edit
from hoopd.masking.terminal import TerminalSplitter

_TailFinder = Callable[[str], int]
"""Where, in the visible text held so far, the held tail of one detector starts
(``len(text)`` when nothing needs holding)."""


def _regex_tail(pattern: str) -> _TailFinder:
    # Each pattern ends in \Z: its leftmost match is the earliest start of a suffix
    # that could still grow into a match, including the characters before and after
    # a match that its look-arounds and validators read. None of them holds a line
    # break (no built-in detector but private-key matches across one, and a line
    # break is nothing any of them looks for around a match), so only the last line
    # is searched.
    regex = re.compile(pattern)

    def find(text: str) -> int:
        match = regex.search(text, text.rfind("\n") + 1)
        return len(text) if match is None else match.start()

    return find


_LOCAL: Final = r"[\w.!#$%&'*+/=?^`{|}~-]"
_B64URL: Final = "[A-Za-z0-9_-]"

# A private key block runs from BEGIN to the first END line, or to the end of the
# text when there is none: while it is open, all of it is held.
_PRIVATE_KEY: Final = DETECTORS["private-key"].regex
_PEM_END: Final = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----\Z")
_PEM_BEGIN_PREFIX: Final = re.compile(
    r"(?:-{1,5}|-----B(?:E(?:G(?:I(?:N(?: [A-Z0-9 ]*+-{0,5})?)?)?)?)?)\Z"
)
_PEM_RESUME: Final = "-----BEGIN PRIVATE KEY-----\n"
"""Put in front of the rest of a key block that was too long to hold whole, so the
detector still sees a block (see :meth:`StreamMasker._cut`)."""


def _open_key_block(text: str) -> int | None:
    """Where the private key block that the text ends inside starts, if it does."""
    last = None
    for match in _PRIVATE_KEY.finditer(text):
        last = match
    if last is not None and last.end() == len(text) and not _PEM_END.search(last.group()):
        return last.start()
    return None


def _private_key_tail(text: str) -> int:
    start = _open_key_block(text)
    if start is not None:
        return start
    match = _PEM_BEGIN_PREFIX.search(text, text.rfind("\n") + 1)
    return len(text) if match is None else match.start()


def _line_tail(text: str) -> int:
    # A regex of the user's own says nothing about what it could still match:
    # hold the current line. Matches that cross a line break are not found.
    return text.rfind("\n") + 1


_DIGIT_RUN: Final = r"(?<![0-9])[0-9]++(?:[ -][0-9]++)*+[ -]?\Z"

_TAILS: Final[dict[str, _TailFinder]] = {
    # The whole run of local-part characters (the local part is all of it), and
    # the domain so far: a domain can always go on ("example.com" -> ".au").
    "email": _regex_tail(rf"(?<!{_LOCAL}){_LOCAL}*+(?:@[\w.-]*+)?\Z"),
    # Card numbers are judged on the whole run of digit groups.
    "card": _regex_tail(_DIGIT_RUN),
    # The run of digits and dashes: "123-45-6789" is not one when "-1" follows.
    "us-ssn": _regex_tail(r"(?<![0-9])[0-9]++(?:-[0-9]++)*+-?\Z"),
    "iban": _regex_tail(
        r"(?<![0-9A-Za-z])(?:[A-Za-z]{2}[0-9]{2}[0-9A-Za-z]*+(?: [0-9A-Za-z]++)*+ ?"
        r"|[A-Za-z]{1,2}|[A-Za-z]{2}[0-9])\Z"
    ),
    # The run of digits, separators and parentheses; the character after it is
    # read too (a phone number does not go on into a word).
    "phone": _regex_tail(r"(?<![\w+/.-])[+(0-9][0-9 .()+-]*+\Z"),
    "jwt": _regex_tail(rf"(?<!{_B64URL})(?:eyJ[A-Za-z0-9_.-]*+|ey?)\Z"),
    "aws-access-key": _regex_tail(r"(?<![A-Za-z0-9])A(?:[KS](?:I(?:A[A-Z0-9]{0,16})?)?)?\Z"),
    "gcp-api-key": _regex_tail(rf"(?<!{_B64URL})A(?:I(?:z(?:a{_B64URL}{{0,35}})?)?)?\Z"),
    "private-key": _private_key_tail,
    "bearer-token": _regex_tail(
        r"(?<![A-Za-z0-9_-])(?:(?:[Bb]earer|BEARER)(?:[ \t]++[A-Za-z0-9._~+/-]*+=*+)?"
        r"|[Bb](?:e(?:a(?:r(?:e)?)?)?)?|B(?:E(?:A(?:R(?:E)?)?)?)?)\Z"
    ),
}


_LINE_LOCAL: Final = frozenset(_TAILS) - {"private-key"}
"""Built-in detectors whose matches, and what decides them, never cross a line break."""


def tail_finder(detector: Detector) -> _TailFinder:
    """The held tail of a detector: its own for a built-in one, the current line
    for anything else (a ``regex:``)."""
    return _TAILS.get(detector.name, _line_tail)


_Masked = tuple[list[Edit], list[str]]

CONTEXT: Final = 256
"""At most this much of the released part of the current line is what the held text
is masked behind. Look-behinds (one or two characters for the built-in detectors)
read it, and so do the look-behinds of those characters themselves: with only the
two last characters, ``+(`` would start a phone number that ``0+(`` does not."""

_MAX_SETTLE_ROUNDS: Final = 4
"""A cut moved this often without becoming safe is given up: nothing is released
until more text arrives (a cut at 0 is always safe)."""


def _disturbed(text: str, cut: int, detector: Detector) -> int:
    """``cut``, or an earlier position when masking ``text[:cut]`` and ``text[cut:]``
    apart would find something else than masking ``text``: the start of a match
    across the cut, or of a find only one of the two ways sees."""
    if cut <= 0:
        return cut
    safe = cut
    for match in detector.regex.finditer(text):
        if match.start() < cut < match.end():
            safe = min(safe, match.start())
    whole = list(detector.find(text))
    apart = list(detector.find(text[:cut]))
    # The text after the cut is masked behind the line before it (see CONTEXT).
    before = max(text.rfind("\n", 0, cut) + 1, cut - CONTEXT)
    for start, end in detector.find(text[before:]):
        start, end = start + before, end + before
        if start >= cut:
            apart.append((start, end))
        elif end > cut:
            safe = min(safe, start)
    if apart != whole:
        moved = min((start for start, _ in set(apart) ^ set(whole)), default=0)
        if moved >= cut:
            # A look-behind at the cut saw what is now released: start the held
            # text at the beginning of the line instead.
            moved = text.rfind("\n", 0, cut - 1) + 1
        safe = min(safe, moved)
    return safe


def _settled(text: str, cut: int, detectors: Sequence[Detector]) -> int:
    """The latest position at or before ``cut`` where masking ``text[:cut]`` and
    ``text[cut:]`` apart (the latter behind the part of its line before the cut, up
    to :data:`CONTEXT` characters) finds exactly what masking ``text`` finds.

    Each detector's tail is only about that detector: a cut at the start of an
    email's tail can fall inside a card number that is already complete, or leave
    a number whose look-ahead read the next character at the very end of the
    released text. Such a cut moves back to the start of the match it disturbs.
    """
    for _ in range(_MAX_SETTLE_ROUNDS):
        if cut <= 0 or cut >= len(text):
            return cut
        # Matches of the built-in detectors other than private-key stay inside a
        # line, so for them only the line holding the cut needs a look.
        line_start = text.rfind("\n", 0, cut) + 1
        line_end = text.find("\n", cut)
        line = text[line_start : len(text) if line_end < 0 else line_end]
        safe = cut
        for detector in detectors:
            if detector.name in _LINE_LOCAL:
                safe = min(safe, line_start + _disturbed(line, cut - line_start, detector))
            else:
                safe = min(safe, _disturbed(text, cut, detector))
        if safe == cut:
            return cut
        cut = safe
    return 0


class StreamMasker:
    """Masks a stream of terminal output, chunk by chunk.

    Guarantees (see docs/masking.md, "Streams"):

    - the concatenation of every :meth:`feed` and the final :meth:`flush` is the
      same however the input was chunked, and equal to masking the visible text
      as a whole with :meth:`Masker.mask_text`, escape sequences put back where
      they were (inside a replaced span: after the replacement, or in place when
      the replacement keeps the length) -- as long as no held tail grows past
      ``max_hold``;
    - what is held is only the end of the text that could still become part of a
      match, or change one next to it; the rest comes out of the same ``feed``;
    - at most ``max_hold`` characters of text and bytes of escape sequences are
      held; past that everything held is masked and released as if the stream
      ended there (a value across that point can escape its detector), except that
      an open private key block stays masked up to its END line;
    - escape sequences come out unchanged, and so do bytes that are not UTF-8
      (no built-in detector matches them; a ``regex:`` may); a sequence or a
      character split across chunks is handled;
    - ``feed`` and ``flush`` never raise for any bytes.

    ``applied`` collects the names of the rules that changed something.
    """

    def __init__(self, masker: Masker, *, max_hold: int = 4096) -> None:
        if max_hold < 1:
            raise ValueError("max_hold must be at least 1")
        self._masker = masker
        self._max_hold = max_hold
        self._detectors = masker.detectors
        self._tails = tuple(dict.fromkeys(map(tail_finder, self._detectors)))
        self._keys = any(d.name == "private-key" for d in self._detectors)
        self._splitter = TerminalSplitter()
        self._text = ""  # visible text not yet released
        self._marks: list[tuple[int, bytes]] = []  # escape bytes, at positions in _text
        self._resume = ""  # _PEM_RESUME while inside a key block too long to hold
        self._context = ""  # the released part of the current line, see CONTEXT
        self.applied: set[str] = set()

    def feed(self, data: bytes) -> bytes:
        """Takes the next chunk; returns what may be sent now, masked."""
        self._take(self._splitter.feed(data))
        cut, resume, masked = self._cut()
        out = self._release(cut, masked)
        self._resume = resume
        return out

    def flush(self) -> bytes:
        """The end of the stream: everything still held, masked. The masker can
        then be used for a new stream."""
        self._take(self._splitter.flush())
        out = self._release(len(self._text))
        self._resume = self._context = ""
        return out

    @property
    def held(self) -> int:
        """Characters of text and bytes of escape sequences held back right now."""
        return len(self._text) + sum(len(mark) for _, mark in self._marks)

    def _take(self, pieces: list[str | bytes]) -> None:
        for piece in pieces:
            if isinstance(piece, str):
                self._text += piece
            else:
                self._marks.append((len(self._text), piece))

    def _cut(self) -> tuple[int, str, _Masked | None]:
        """How much of the held text can be released now; the key block prefix the
        text after that starts with (see :data:`_PEM_RESUME`); and, when already
        known, the edits of the text to release (behind :meth:`_prefix`)."""
        prefix = self._prefix()
        base = len(prefix)
        text = prefix + self._text
        cut = len(text)
        masked: _Masked | None = None
        while cut > base:
            # A replacement changes what is next to it, so the cut must also allow
            # for the held text being replaced later (an email glued to a card
            # number becomes one when the card is masked): the released text's
            # own tails, as if anything could follow, are held too...
            start = min((tail(text[:cut]) for tail in self._tails), default=cut)
            if start >= cut:
                masked = self._masker.text_edits(text[:cut])
                start = self._after_last_edit(text, cut, masked[0])
            if start >= cut:
                break
            cut = _settled(text, start, self._detectors)
            masked = None
        cut = max(cut - base, 0)
        held = len(self._text) - cut + sum(len(mark) for pos, mark in self._marks if pos > cut)
        if held <= self._max_hold:
            # Held text still starts inside the key block unless some was released.
            return cut, self._resume if cut == 0 else "", masked
        # Too much to hold: release it all, but a key block that is still open
        # goes on being one, so the rest of the key is masked too.
        still_open = self._keys and _open_key_block(text) is not None
        return len(self._text), _PEM_RESUME if still_open else "", None

    def _after_last_edit(self, text: str, cut: int, edits: list[Edit]) -> int:
        """``cut``, or where to cut instead because of the last replacement before
        it: what follows a replacement no longer has the neighbour that may have
        kept it from matching (``alice@example.com(415) 555-2671`` holds a phone
        number once the email is masked)."""
        if not edits:
            return cut
        start, end, _ = edits[-1]
        if end > len(self._context) and (end == cut or (end == cut - 1 and text[end] == "-")):
            # The held text would start next to the replacement (or "-" after
            # it, which the us-ssn detector looks behind): hold the replaced
            # value too, until what follows it is known.
            return start
        after = text[end:]
        return end + min(
            min((tail(after) for tail in self._tails), default=len(after)),
            _settled(after, cut - end, self._detectors),
        )

    def _prefix(self) -> str:
        """What the held text is masked behind: the last released characters
        (look-behinds read them) and, inside a key block, :data:`_PEM_RESUME`."""
        return self._context + self._resume

    def _release(self, cut: int, masked: _Masked | None = None) -> bytes:
        """Masks and returns the first ``cut`` characters of held text, and the
        escape sequences up to there. ``masked``: the edits and rule names of that
        text (behind :meth:`_prefix`), when they are known."""
        if cut == 0 and not self._marks:
            return b""
        prefix = self._prefix()
        segment = self._text[:cut]
        marks = [(pos, mark) for pos, mark in self._marks if pos <= cut]
        self._marks = [(pos - cut, mark) for pos, mark in self._marks if pos > cut]
        self._text = self._text[cut:]
        if not segment:
            return b"".join(mark for _, mark in marks)
        edits, names = masked or self._masker.text_edits(prefix + segment)
        self.applied.update(names)
        context = self._context + segment
        self._context = context[max(context.rfind("\n") + 1, len(context) - CONTEXT) :]
        return _assemble(segment, _without_prefix(edits, len(prefix)), marks)


def _without_prefix(edits: list[Edit], length: int) -> list[Edit]:
    """Edits of ``prefix + text`` as edits of ``text``. A replacement reaching into
    the text from the prefix (a key block behind :data:`_PEM_RESUME`) covers the
    start of the text."""
    out = []
    for start, end, replacement in edits:
        if end <= length:
            continue
        if start < length:
            if len(replacement) == end - start:
                replacement = replacement[length - start :]  # keep-last: same length
            start = length
        out.append((start - length, end - length, replacement))
    return out


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _assemble(
    text: str, edits: list[tuple[int, int, str]], marks: list[tuple[int, bytes]]
) -> bytes:
    """``text`` with ``edits`` applied and each escape put back before the character
    it came before. Inside a replaced span an escape goes where it was when the
    replacement has the same length (``keep-last``), otherwise after it."""
    out: list[bytes] = []
    done = 0
    index = 0

    def copy_to(end: int) -> None:
        nonlocal done, index
        while index < len(marks) and marks[index][0] < end:
            pos, mark = marks[index]
            out.append(_encode(text[done:pos]))
            out.append(mark)
            done = pos
            index += 1
        out.append(_encode(text[done:end]))
        done = end

    for start, end, replacement in edits:
        copy_to(start)
        while index < len(marks) and marks[index][0] == start:
            out.append(marks[index][1])
            index += 1
        inside = []
        while index < len(marks) and marks[index][0] < end:
            inside.append(marks[index])
            index += 1
        if len(replacement) == end - start:
            placed = 0
            for pos, mark in inside:
                out.append(_encode(replacement[placed : pos - start]))
                out.append(mark)
                placed = pos - start
            out.append(_encode(replacement[placed:]))
        else:
            out.append(_encode(replacement))
            out.extend(mark for _, mark in inside)
        done = end
    copy_to(len(text))
    out.extend(mark for _, mark in marks[index:])
    return b"".join(out)
