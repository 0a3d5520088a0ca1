"""Sessions name their whole delegation chain, and ``hoopd sessions --tree`` groups
them by who started whom."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hoopd.recording.journal import Journal
from tests.unit.test_recording_support import ALICE, run_cli, start, statement


def delegated(*actors: str, subject: str = "alice") -> dict[str, Any]:
    """An identity record as Identity.to_record() writes it for a delegated token."""
    return {
        "subject": subject,
        "groups": ["dev"],
        "token_id": f"tok-{len(actors)}",
        "actor_chain": list(actors),
        "issuer": "hoopd",
        "scope": ["appdb:read"],
    }


# Written before delegation existed: no actor_chain, no issuer.
OLD_RECORD = {"subject": "bob", "groups": [], "token_id": "tok-bob"}


async def record_chains(data_dir: Path, *, keep_open: bool = False) -> dict[str, str]:
    """Sessions across two protocols' worth of connections and three hops; their ids
    by a short name."""
    journal = Journal.open(data_dir)
    ids: dict[str, str] = {}
    plan: list[tuple[str, dict[str, Any] | None, dict[str, Any], bool]] = [
        ("alice", ALICE, {}, True),
        ("ci", delegated("ci-job"), {"connection": "reports"}, True),
        ("agent", delegated("ci-job", "sub-agent"), {}, False),
        ("ci-again", delegated("ci-job"), {"protocol": "mysql", "connection": "orders"}, True),
        ("bob", OLD_RECORD, {}, True),
        ("nobody", None, {}, True),
        ("other-agent", delegated("reviewer"), {}, True),
    ]
    for name, identity, extra, close in plan:
        recorder = start(journal, identity=identity, **extra)
        await recorder.append([statement("SELECT 1")])
        if close:
            await recorder.close("client-disconnect")
        ids[name] = recorder.session_id
    if not keep_open:
        journal.close()
    return ids


def session_line(sid: str, where: str, ending: str, indent: str) -> re.Pattern[str]:
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    return re.compile(
        re.escape(f"{indent}{sid}  {where}") + rf"  {stamp} \.\. " + ending.replace("STAMP", stamp)
    )


async def test_tree_puts_each_hop_under_the_one_that_started_it(tmp_path: Path) -> None:
    ids = await record_chains(tmp_path)
    done = run_cli(["sessions", "--tree", "--data-dir", str(tmp_path)])
    assert done.status == 0, done.err
    lines = done.out.splitlines()
    expected: list[str | re.Pattern[str]] = [
        "(no identity)",
        session_line(ids["nobody"], "appdb (postgres)", "STAMP", "  "),
        "alice",
        session_line(ids["alice"], "appdb (postgres)", "STAMP", "  "),
        "  > ci-job",
        session_line(ids["ci"], "reports (postgres)", "STAMP", "    "),
        session_line(ids["ci-again"], "orders (mysql)", "STAMP", "    "),
        "    > sub-agent",
        session_line(ids["agent"], "appdb (postgres)", "unterminated", "      "),
        "  > reviewer",
        session_line(ids["other-agent"], "appdb (postgres)", "STAMP", "    "),
        "bob",
        session_line(ids["bob"], "appdb (postgres)", "STAMP", "  "),
    ]
    assert len(lines) == len(expected), done.out
    for line, want in zip(lines, expected, strict=True):
        if isinstance(want, str):
            assert line == want
        else:
            assert want.fullmatch(line), (line, want.pattern)


async def test_a_session_still_running_is_live(tmp_path: Path) -> None:
    ids = await record_chains(tmp_path, keep_open=True)
    done = run_cli(["sessions", "--tree", "--data-dir", str(tmp_path)])
    (line,) = [line for line in done.out.splitlines() if ids["agent"] in line]
    assert line.endswith(" .. live")


async def test_tree_json_nests_delegates_with_full_sessions(tmp_path: Path) -> None:
    ids = await record_chains(tmp_path)
    done = run_cli(["sessions", "--tree", "--json", "--data-dir", str(tmp_path)])
    roots = [json.loads(line) for line in done.out.splitlines()]
    assert [root["name"] for root in roots] == ["(no identity)", "alice", "bob"]
    alice = roots[1]
    assert [s["id"] for s in alice["sessions"]] == [ids["alice"]]
    ci, reviewer = alice["delegates"]
    assert (ci["name"], ci["chain"]) == ("ci-job", ["alice", "ci-job"])
    assert [(s["id"], s["protocol"]) for s in ci["sessions"]] == [
        (ids["ci"], "postgres"),
        (ids["ci-again"], "mysql"),
    ]
    (agent,) = ci["delegates"]
    assert agent["chain"] == ["alice", "ci-job", "sub-agent"]
    assert agent["sessions"][0]["state"] == "unterminated"
    assert agent["delegates"] == []
    assert reviewer["chain"] == ["alice", "reviewer"]
    assert roots[2]["sessions"][0]["identity"] == OLD_RECORD


async def test_listing_and_replay_name_the_whole_chain(tmp_path: Path) -> None:
    ids = await record_chains(tmp_path)
    done = run_cli(["sessions", "--data-dir", str(tmp_path)])
    rows = {line.split()[0]: line for line in done.out.splitlines()[1:]}
    assert "  alice > ci-job > sub-agent  " in rows[ids["agent"]]
    assert "  bob  " in rows[ids["bob"]]  # a record from before delegation still lists
    done = run_cli(["replay", ids["agent"], "--data-dir", str(tmp_path)])
    header, start_line, *_ = done.out.splitlines()
    assert header == (
        f"session {ids['agent']} (unterminated) alice > ci-job > sub-agent on appdb (postgres)"
    )
    assert start_line.endswith(
        "as alice > ci-job > sub-agent (groups dev) issuer hoopd token tok-2"
    )
    done = run_cli(["replay", ids["bob"], "--data-dir", str(tmp_path)])
    assert done.out.splitlines()[0] == f"session {ids['bob']} (ended) bob on appdb (postgres)"
    assert "as bob token tok-bob" in done.out


async def test_actor_names_cannot_carry_terminal_escapes(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    recorder = start(journal, identity=delegated("evil\x1b[2J"))
    await recorder.close("client-disconnect")
    journal.close()
    done = run_cli(["sessions", "--tree", "--data-dir", str(tmp_path)])
    assert "\x1b" not in done.out
    assert "  > evil\\u001b[2J" in done.out.splitlines()
