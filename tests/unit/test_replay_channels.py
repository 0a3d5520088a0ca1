"""``hoopd replay`` of an SSH session: channel data as text, exit status, SFTP operations."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hoopd.recording.frames import Record
from hoopd.recording.journal import Journal
from hoopd.recording.render import replay_lines
from hoopd.recording.render_channels import TEXT_SLICE
from tests.unit.test_recording_support import run_cli, start


def _record(kind: str, body: dict[str, object], seq: int = 0) -> Record:
    return Record("s", seq, 1_700_000_000.0 + seq, kind, body, b"", b"", b"")


async def test_an_exec_replays_its_output_exit_status_and_operations(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    recorder = start(journal, protocol="ssh", connection="web1")
    await recorder.append(
        [
            ("channel_open", {"channel": 1, "type": "exec", "command": "ls /srv"}),
            ("statement", {"kind": "exec", "text": "ls /srv", "origin": "ssh", "command": 1}),
            ("stdout", {"channel": 1, "data": b"app\nda"}),
            ("stdout", {"channel": 1, "data": b"ta\n"}),
            ("stderr", {"channel": 1, "data": b"ls: \x1b[31mwarning\n"}),
            ("exit", {"channel": 1, "status": 2}),
            ("channel_open", {"channel": 2, "type": "subsystem", "command": "sftp"}),
            ("stdin", {"channel": 2, "data": b"\x00\x00\x00\x05\x01\x00\x00\x00\x03"}),
            (
                "statement",
                {"kind": "sftp-read", "text": "open ../x for read", "origin": "ssh",
                 "command": 2, "paths": ["/srv/x"]},
            ),
            ("channel_close", {"channel": 3, "to_target": 10, "to_client": 12}),
        ]
    )  # fmt: skip
    await recorder.close("client closed the connection")
    journal.close()
    done = run_cli(["replay", recorder.session_id, "--data-dir", str(tmp_path)])
    assert done.status == 0, done.err
    order = [
        "ch1 open [exec] ls /srv",
        "command #1 [exec]",
        "ch1 stdout",
        "| app",
        "| data",  # one line, though it came in two records
        "ch1 stderr",
        "| ls: \\u001b[31mwarning",  # escapes are shown, never played
        "ch1 exit status 2",
        "ch2 open [subsystem] sftp",
        "ch2 stdin",
        "| (9 bytes, not text)",
        "command #2 [sftp-read]",
        "open ../x for read",
        "paths: /srv/x",
        "ch3 closed (10 bytes to target, 12 bytes to client)",
    ]
    positions = [done.out.index(fragment) for fragment in order]
    assert positions == sorted(positions)
    assert "\x1b" not in done.out
    assert "base64" not in done.out


def test_long_text_is_printed_in_slices_without_losing_a_line() -> None:
    line = b"x" * 1000 + b"\n"
    count = TEXT_SLICE // len(line) * 3
    records = [_record("stdout", {"channel": 1, "data": line}, i) for i in range(count)]
    lines = list(replay_lines(records))
    assert lines[0].endswith("ch1 stdout")
    assert len(lines) == count + 1
    assert all(text.endswith("| " + "x" * 1000) for text in lines[1:])


@given(st.lists(st.tuples(st.sampled_from(["stdin", "stdout"]), st.binary(max_size=64))))
def test_any_bytes_render_as_escaped_lines_only(chunks: list[tuple[str, bytes]]) -> None:
    records = [
        _record(kind, {"channel": 1, "data": data}, i) for i, (kind, data) in enumerate(chunks)
    ]
    for text in replay_lines(records):
        assert "\x1b" not in text and "\r" not in text and "\x00" not in text
