"""``hoopd sessions``, ``hoopd replay`` and ``hoopd audit`` as a user sees them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hoopd.recording.frames import Record
from hoopd.recording.journal import Journal
from hoopd.recording.reader import journal_entries
from hoopd.recording.segments import list_segments
from tests.unit.test_recording_support import ALICE, BOB, result, run_cli, start, statement


async def record_demo(data_dir: Path) -> tuple[str, str]:
    """One ended session (bob) and one left open by a stopped gateway (alice)."""
    journal = Journal.open(data_dir)
    ended = start(journal, identity=BOB, client_addr="10.1.2.3:5555", connection="reports")
    await ended.append([("auth", {"outcome": "accepted", "identity": BOB})])
    await ended.append([statement("SELECT * FROM accounts WHERE id = $1", "42", b"\x01\xfe", None)])
    await ended.append([result("SELECT 1", 1)])
    kind, body = statement("DELETE FROM accounts")
    await ended.append([(kind, {**body, "command": 2})])
    error = {"severity": "ERROR", "code": "42501", "message": "permission denied"}
    await ended.append([("result", {"error": error, "command": 2})])
    await ended.close("client-disconnect")
    left_open = start(journal, identity=ALICE)
    await left_open.append([statement("SELECT 1")])
    journal.close()
    return ended.session_id, left_open.session_id


async def test_sessions_lists_one_row_per_session(tmp_path: Path) -> None:
    ended, left_open = await record_demo(tmp_path)
    done = run_cli(["sessions", "--data-dir", str(tmp_path)])
    assert done.status == 0
    header, *rows = done.out.splitlines()
    assert header.split() == [
        "ID",
        "STARTED",
        "(UTC)",
        "ENDED",
        "(UTC)",
        "IDENTITY",
        "CONNECTION",
        "CLIENT",
        "STATEMENTS",
    ]
    assert len(rows) == 2
    first, second = (row.split() for row in rows)
    assert first[0] == ended and first[5:] == ["bob", "reports", "10.1.2.3:5555", "2"]
    assert second[0] == left_open and second[3:] == [
        "unterminated",
        "alice",
        "appdb",
        "127.0.0.1:50123",
        "-",
    ]


async def test_sessions_json_has_one_object_per_line(tmp_path: Path) -> None:
    ended, left_open = await record_demo(tmp_path)
    done = run_cli(["sessions", "--data-dir", str(tmp_path), "--json"])
    objects = [json.loads(line) for line in done.out.splitlines()]
    assert [(o["id"], o["state"]) for o in objects] == [
        (ended, "ended"),
        (left_open, "unterminated"),
    ]
    assert objects[0]["identity"]["subject"] == "bob"
    assert objects[0]["statement_count"] == 2 and objects[0]["end_reason"] == "client-disconnect"


async def test_sessions_in_an_empty_data_dir_says_so(tmp_path: Path) -> None:
    done = run_cli(["sessions", "--data-dir", str(tmp_path / "nothing")])
    assert done.status == 0 and done.out == ""
    assert "no recorded sessions" in done.err


async def test_replay_prints_statements_and_results_in_order(tmp_path: Path) -> None:
    ended, _ = await record_demo(tmp_path)
    done = run_cli(["replay", ended, "--data-dir", str(tmp_path)])
    assert done.status == 0, done.err
    text = done.out
    order = [
        "session start connection reports (postgres) from 10.1.2.3:5555 as bob",
        "auth accepted bob",
        "statement [select; reads public.accounts]",
        "SELECT * FROM accounts WHERE id = $1",
        "params: $1 = '42', $2 = \\x01fe (binary), $3 = NULL",
        "-> SELECT 1 (1 row)",
        "statement #2 [select; reads public.accounts]",
        "DELETE FROM accounts",
        "-> #2 ERROR 42501: permission denied",
        "session end (client-disconnect)",
    ]
    positions = [text.index(fragment) for fragment in order]
    assert positions == sorted(positions)


async def test_replay_accepts_a_unique_prefix_and_rejects_unknown_ids(tmp_path: Path) -> None:
    ended, left_open = await record_demo(tmp_path)
    common = 0
    while ended[common] == left_open[common]:
        common += 1
    done = run_cli(["replay", ended[: common + 1], "--data-dir", str(tmp_path)])
    assert done.status == 0 and "DELETE FROM accounts" in done.out
    missing = run_cli(["replay", "zzzz", "--data-dir", str(tmp_path)])
    assert missing.status == 1 and "no session 'zzzz'" in missing.err
    ambiguous = run_cli(["replay", ended[:common], "--data-dir", str(tmp_path)])
    assert ambiguous.status == 1 and "matches 2 sessions" in ambiguous.err


async def test_replay_json_is_one_record_per_line_with_bytes_as_base64(tmp_path: Path) -> None:
    ended, _ = await record_demo(tmp_path)
    done = run_cli(["replay", ended, "--data-dir", str(tmp_path), "--json"])
    records = [json.loads(line) for line in done.out.splitlines()]
    assert [r["seq"] for r in records] == list(range(7))
    assert [r["kind"] for r in records] == [
        "session_start",
        "auth",
        "statement",
        "result",
        "statement",
        "result",
        "session_end",
    ]
    params = records[2]["body"]["params"]
    assert params[0] == "42" and params[2] is None
    assert base64.b64decode(params[1]["base64"]) == b"\x01\xfe"
    assert records[1]["prev_hash"] == records[0]["hash"] and len(records[0]["hash"]) == 64


async def test_replay_cannot_be_made_to_emit_terminal_control_sequences(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    session = start(journal)
    await session.append([statement("SELECT 1 \x1b[2K\x1b[1A-- innocent")])
    await session.close("client-disconnect")
    journal.close()
    done = run_cli(["replay", session.session_id, "--data-dir", str(tmp_path)])
    assert "\x1b" not in done.out
    assert "SELECT 1 \\u001b[2K\\u001b[1A-- innocent" in done.out


async def test_replay_warns_when_the_session_was_tampered_with(tmp_path: Path) -> None:
    ended, _ = await record_demo(tmp_path)
    path = list_segments(tmp_path)[0][1]
    path.write_bytes(path.read_bytes().replace(b"DELETE FROM", b"SELECT FROM"))
    done = run_cli(["replay", ended, "--data-dir", str(tmp_path)])
    assert done.status == 0 and "SELECT FROM accounts" in done.out
    assert "warning:" in done.err and "edited" in done.err


async def test_replay_warns_when_the_sessions_last_record_cannot_be_read(tmp_path: Path) -> None:
    ended, _ = await record_demo(tmp_path)
    path = list_segments(tmp_path)[0][1]
    end = next(
        entry
        for entry in journal_entries(tmp_path)
        if isinstance(entry, Record) and entry.session_id == ended and entry.kind == "session_end"
    )
    content = bytearray(path.read_bytes())
    content[end.offset + 4 : end.offset + 6] = b"\0\0"  # no longer starts like a record
    path.write_bytes(bytes(content))
    done = run_cli(["replay", ended, "--data-dir", str(tmp_path)])
    assert done.status == 0 and "DELETE FROM accounts" in done.out
    assert f"index lists records up to seq {end.seq}" in done.err
    assert f"the last one readable is seq {end.seq - 1}" in done.err


async def test_audit_verify_reports_intact_chains_and_unterminated_sessions(tmp_path: Path) -> None:
    _, left_open = await record_demo(tmp_path)
    done = run_cli(["audit", "verify", "--data-dir", str(tmp_path)])
    assert done.status == 0
    lines = done.out.splitlines()
    assert lines[-1] == "2 sessions, 9 records, all chains intact"
    assert f"1 unterminated (gateway stopped without ending them): {left_open}" in lines


async def test_audit_verify_names_every_break_and_exits_1(tmp_path: Path) -> None:
    ended, _ = await record_demo(tmp_path)
    path = list_segments(tmp_path)[0][1]
    path.write_bytes(path.read_bytes().replace(b"DELETE FROM", b"SELECT FROM") + b"trailing junk")
    done = run_cli(["audit", "verify", "--data-dir", str(tmp_path)])
    assert done.status == 1
    broken = [line for line in done.out.splitlines() if line.startswith("BROKEN")]
    assert len(broken) == 2
    assert broken[0].startswith(f"BROKEN session {ended}, seq 4, segment 1 offset ")
    assert "edited" in broken[0]
    assert "corrupt: 13 bytes that are not a record" in broken[1]
    assert done.out.splitlines()[-1] == "2 sessions, 9 records, 2 problems found"


async def test_reindex_rebuilds_a_lost_index_but_not_over_evidence(tmp_path: Path) -> None:
    await record_demo(tmp_path)
    before = run_cli(["sessions", "--data-dir", str(tmp_path), "--json"]).out
    for path in tmp_path.glob("hoopd.sqlite*"):
        path.unlink()
    rebuilt = run_cli(["audit", "reindex", "--data-dir", str(tmp_path)])
    assert rebuilt.status == 0 and rebuilt.out == "index rebuilt: 2 sessions\n"
    after = [
        json.loads(line)
        for line in run_cli(["sessions", "--data-dir", str(tmp_path), "--json"]).out.splitlines()
    ]
    assert [json.loads(line)["id"] for line in before.splitlines()] == [o["id"] for o in after]
    # The open session's records are now counted, though it still has no end.
    assert after[1]["state"] == "unterminated" and after[1]["statement_count"] == 1

    path = list_segments(tmp_path)[0][1]
    path.write_bytes(path.read_bytes() + b"junk")
    refused = run_cli(["audit", "reindex", "--data-dir", str(tmp_path)])
    assert refused.status == 1 and "--force" in refused.err


async def test_reindex_refuses_while_a_gateway_records(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    try:
        done = run_cli(["audit", "reindex", "--data-dir", str(tmp_path)])
    finally:
        journal.close()
    assert done.status == 1 and "a gateway is recording" in done.err


async def test_data_dir_comes_from_the_config_file_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended, _ = await record_demo(tmp_path / "etc" / "state")
    config = tmp_path / "etc" / "hoopd.toml"
    config.write_text('[gateway]\ndata_dir = "state"\nlog_level = "info"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOPD_DATA_DIR", str(tmp_path / "elsewhere"))
    done = run_cli(["sessions", "--config", str(config)])
    assert ended in done.out


async def test_data_dir_falls_back_to_the_environment_then_hoopd_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env, _ = await record_demo(tmp_path / "env")
    default, _ = await record_demo(tmp_path / "hoopd-data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOPD_DATA_DIR", str(tmp_path / "env"))
    assert from_env in run_cli(["sessions"]).out
    monkeypatch.delenv("HOOPD_DATA_DIR")
    assert default in run_cli(["sessions"]).out
    # --data-dir beats everything.
    assert from_env in run_cli(["sessions", "--data-dir", "env"]).out


async def test_verify_of_a_directory_without_recordings_does_not_claim_success(
    tmp_path: Path,
) -> None:
    done = run_cli(["audit", "verify", "--data-dir", str(tmp_path / "typo")])
    assert done.status == 2 and "no journal in" in done.err
    assert "intact" not in done.out


async def test_an_unreadable_config_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "hoopd.toml"
    bad.write_text("[gateway\n")
    done = run_cli(["audit", "verify", "--config", str(bad)])
    assert done.status == 2 and "cannot read" in done.err


async def test_replay_shows_host_commands_and_refusals(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    recorder = start(journal, protocol="ssh", connection="web1")
    denied = {"action": "deny", "rule": "no-shadow", "message": "stays on the host"}
    await recorder.append(
        [
            ("statement", {"kind": "exec", "text": "uptime", "origin": "ssh", "command": 1}),
            (
                "statement",
                {"kind": "exec", "text": "cat /etc/shadow", "origin": "ssh", "command": 2,
                 "verdict": denied},
            ),
        ]
    )  # fmt: skip
    await recorder.close("client closed the connection")
    journal.close()
    done = run_cli(["replay", recorder.session_id, "--data-dir", str(tmp_path)])
    assert done.status == 0, done.err
    order = [
        "command #1 [exec]",
        "uptime",
        "command #2 [exec]",
        "cat /etc/shadow",
        "deny by rule no-shadow: stays on the host",
    ]
    positions = [done.out.index(fragment) for fragment in order]
    assert positions == sorted(positions)
