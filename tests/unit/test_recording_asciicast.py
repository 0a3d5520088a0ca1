"""`hoopd replay --format asciicast`: a recorded terminal channel, playable by asciinema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hoopd.recording.journal import Journal
from tests.unit.test_recording_support import run_cli, start

SMILE = "\N{SMILING FACE WITH SMILING EYES}".encode()


async def _shell_session(data_dir: Path) -> str:
    journal = Journal.open(data_dir)
    recorder = start(journal, protocol="ssh", connection="web1")
    pty = {"term": "xterm-256color", "cols": 120, "rows": 30}
    await recorder.append([("channel_open", {"channel": 0, "type": "exec", "command": "uptime"})])
    await recorder.append([("stdout", {"channel": 0, "data": b"not this one\n"})])
    await recorder.append(
        [("channel_open", {"channel": 1, "type": "shell", "command": "shell", "pty": pty})]
    )
    await recorder.append([("stdin", {"channel": 1, "data": b"ls\r"})])
    # A character split over two chunks comes out whole.
    await recorder.append([("stdout", {"channel": 1, "data": b"ls\r\nhello " + SMILE[:2]})])
    await recorder.append([("stdout", {"channel": 1, "data": SMILE[2:] + b"\r\n$ "})])
    await recorder.append([("window", {"channel": 1, "cols": 100, "rows": 40})])
    await recorder.append([("exit", {"channel": 1, "status": 0})])
    await recorder.close("client closed the connection")
    journal.close()
    return recorder.session_id


async def test_a_shell_channel_becomes_an_asciicast(tmp_path: Path) -> None:
    session = await _shell_session(tmp_path)
    done = run_cli(["replay", session, "--format", "asciicast", "--data-dir", str(tmp_path)])
    assert done.status == 0, done.err
    header, *events = [json.loads(line) for line in done.out.splitlines()]
    assert header["version"] == 2 and (header["width"], header["height"]) == (120, 30)
    assert header["env"] == {"TERM": "xterm-256color"}
    output = "".join(text for _, kind, text in events if kind == "o")
    assert output == "ls\r\nhello \N{SMILING FACE WITH SMILING EYES}\r\n$ "
    assert "not this one" not in done.out  # another channel's output
    assert [e[2] for e in events if e[1] == "r"] == ["100x40"]
    times = [e[0] for e in events]
    assert times == sorted(times) and all(t >= 0 for t in times)


async def test_a_session_without_a_terminal_says_so(tmp_path: Path) -> None:
    session = await _shell_session(tmp_path)
    done = run_cli(
        ["replay", session, "--format", "asciicast", "--channel", "0", "--data-dir", str(tmp_path)]
    )
    assert done.status != 0 and "no channel 0 with a terminal" in done.err


async def test_asciinema_itself_plays_it_back(tmp_path: Path) -> None:
    session = await _shell_session(tmp_path / "data")
    done = run_cli(
        ["replay", session, "--format", "asciicast", "--data-dir", str(tmp_path / "data")]
    )
    cast = tmp_path / "session.cast"
    cast.write_text(done.out)
    # `asciinema cat` parses the file as asciinema does and prints the output stream.
    played = subprocess.run(
        [str(Path(sys.executable).with_name("asciinema")), "cat", str(cast)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert played.returncode == 0, played.stderr
    assert played.stdout == b"ls\r\nhello " + SMILE + b"\r\n$ "
