"""The shell line model: typed lines rebuilt from keystrokes, uncertain when the
model cannot follow, never raising, and the same whatever the chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.protocols.ssh.shell_lines import MAX_LINE, ShellLine, ShellLines


def lines_of(*chunks: bytes) -> list[ShellLine]:
    model = ShellLines()
    return [line for chunk in chunks for line in model.feed(chunk)]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (b"echo hello\r", [ShellLine("echo hello")]),
        (b"echo hello\n", [ShellLine("echo hello")]),
        (b"ls\r\npwd\r", [ShellLine("ls"), ShellLine("pwd")]),
        (b"\r\r\n\n", []),  # empty lines are not given
        (b"echo hellp\x7fo\r", [ShellLine("echo hello")]),
        (b"echo hellp\x08o\r", [ShellLine("echo hello")]),
        (b"\x7f\x7fls\r", [ShellLine("ls")]),  # backspace on an empty line
        (b"rm -rf /\x15ls\r", [ShellLine("ls")]),  # Ctrl-U
        (b"git push --force\x17\x17status\r", [ShellLine("git status")]),  # Ctrl-W
        (b"echo a   \x17b\r", [ShellLine("echo b")]),  # Ctrl-W takes the spaces too
        (b"rm -rf /\x03ls\r", [ShellLine("ls")]),  # Ctrl-C: no record, line cleared
        (b"sleep 5\r\x03", [ShellLine("sleep 5")]),
        (b"\x04", []),  # Ctrl-D on an empty line
        (b"\x0cls\r", [ShellLine("ls")]),  # Ctrl-L
        ("echo héllo €𝄞\r".encode(), [ShellLine("echo héllo €𝄞")]),
        ("echo €\x7f$\r".encode(), [ShellLine("echo $")]),  # one character, three bytes
    ],
)
def test_lines_from_keys(typed: bytes, expected: list[ShellLine]) -> None:
    assert lines_of(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (b"\x1b[A\r", ShellLine("", uncertain=True)),  # history recall, then Enter
        (b"ech\x1b[Do\r", ShellLine("echo", uncertain=True)),  # cursor left
        (b"ls\x1bOA\r", ShellLine("ls", uncertain=True)),  # SS3 arrow
        (b"ls\x1b[1;5C -l\r", ShellLine("ls -l", uncertain=True)),  # Ctrl-Right
        (b"ls\x1b[200~ -l\x1b[201~\r", ShellLine("ls -l", uncertain=True)),  # paste
        (b"ls\x1bb -l\r", ShellLine("ls -l", uncertain=True)),  # Alt-b
        (b"cat /etc/pas\t\r", ShellLine("cat /etc/pas", uncertain=True)),  # completion
        (b"\x12ssh\r", ShellLine("ssh", uncertain=True)),  # Ctrl-R search
        (b"ls\x01#\r", ShellLine("ls#", uncertain=True)),  # Ctrl-A
        (b"echo \xff\xfe\r", ShellLine("echo \ufffd\ufffd", uncertain=True)),
        (b"ls\x1b\r", ShellLine("ls", uncertain=True)),  # a lone ESC; Enter still ends
        (b"ls\x1b[\r", ShellLine("ls", uncertain=True)),  # an unfinished CSI
    ],
)
def test_uncertain_lines(typed: bytes, expected: ShellLine) -> None:
    assert lines_of(typed) == [expected]


def test_uncertainty_lasts_until_the_line_ends() -> None:
    assert lines_of(b"\x1b[Als\x15pwd\rid\r") == [
        ShellLine("pwd", uncertain=True),  # Ctrl-U after cursor movement: not sure
        ShellLine("id"),
    ]
    assert lines_of(b"\x1b[A\x03id\r") == [ShellLine("id")]  # Ctrl-C starts afresh


def test_a_character_or_escape_split_across_chunks() -> None:
    typed = "echo €\x1b[A\r".encode()
    for cut in range(len(typed) + 1):
        assert lines_of(typed[:cut], typed[cut:]) == [ShellLine("echo €", uncertain=True)]


def test_a_long_line_is_bounded_and_uncertain() -> None:
    [line] = lines_of(b"x" * (MAX_LINE + 10) + b"\r")
    assert line == ShellLine("x" * MAX_LINE, uncertain=True)


def test_the_record_body() -> None:
    assert ShellLine("ls").record(3) == {"channel": 3, "line": "ls"}
    assert ShellLine("", True).record(1) == {"channel": 1, "line": "", "uncertain": True}


# Keys the model treats specially, so random streams exercise them often.
KEYS = st.sampled_from(
    [
        *(b"\r", b"\n", b"\x7f", b"\x08", b"\x15", b"\x17", b"\x03", b"\x04", b"\t", b"\x1b"),
        *(b"\x1b[", b"\x1bO", b"[A", b"1;5", b"~", b" ", b"ls", "€".encode(), b"\xe2", b"\xff"),
    ]
)
STREAMS = st.lists(st.one_of(st.binary(max_size=20), KEYS), max_size=40).map(b"".join)


@settings(max_examples=300)
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=12))
def test_any_bytes_in_any_chunking_never_raise_and_give_the_same_lines(
    data: bytes, cuts: list[int]
) -> None:
    whole = lines_of(data)
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert lines_of(*chunks) == whole
    assert lines_of(*(data[i : i + 1] for i in range(len(data)))) == whole
    for line in whole:
        assert len(line.line) <= MAX_LINE
        assert line.line or line.uncertain
        assert "\r" not in line.line and "\n" not in line.line
