"""Approvers at work: ``hoopd approvals|approve|deny`` run as real processes, and the
admin API reached with curl over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from hoopd.approvals import ApprovalRequest, ApprovalStore, serve_admin_api
from hoopd.config import load_config
from hoopd.identity.tokens import StaticTokenVerifier
from tests.unit.test_approvals_support import SQL, TOKENS, new_request, write_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    status: int
    out: str
    err: str


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def store(config: Path) -> ApprovalStore:
    return ApprovalStore.open(config.parent / "data")


@pytest.fixture
def request_(store: ApprovalStore) -> ApprovalRequest:
    return new_request(store)


def hoopd(*args: str, token: str | None = None, stdin: str = "") -> Done:
    """Run ``python -m hoopd``; ``token`` goes in HOOPD_TOKEN, else ``stdin`` is the input."""
    env = {k: v for k, v in os.environ.items() if k != "HOOPD_TOKEN"}
    if token is not None:
        env["HOOPD_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-m", "hoopd", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def test_an_approver_lists_and_approves(
    config: Path, store: ApprovalStore, request_: ApprovalRequest
) -> None:
    listed = hoopd("approvals", "--config", str(config), token=TOKENS["bob"])
    assert listed.status == 0, listed.err
    header, row = listed.out.splitlines()[:2]
    columns = ["ID", "REQUESTER", "CONNECTION", "RULE", "LEFT", "APPROVALS", "COMMAND"]
    assert header.split() == columns
    cells = row.split()
    assert cells[:4] == [request_.id, "alice", "appdb", "prod-deletes"]
    assert re.fullmatch(r"5m00s|4m[0-5]\ds", cells[4])  # time left, less the start-up time
    assert cells[5] == "0/1"
    assert "DELETE FROM accounts WHERE closed_at" in row

    approved = hoopd("approve", request_.id, "--config", str(config), token=TOKENS["bob"])
    assert (approved.status, approved.err) == (0, "")
    assert approved.out == f"Approved {request_.id} (approved by bob).\n"
    decided = store.get(request_.id)
    assert decided is not None and decided.status == "approved"

    empty = hoopd("approvals", "--config", str(config), token=TOKENS["carol"])
    assert empty.out == "No pending approval requests for you.\n"


def test_the_token_can_come_on_standard_input(config: Path, request_: ApprovalRequest) -> None:
    listed = hoopd("approvals", "--config", str(config), "--json", stdin=TOKENS["carol"] + "\n")
    assert listed.status == 0, listed.err
    [line] = listed.out.splitlines()
    shown = json.loads(line)
    assert (shown["id"], shown["command"], shown["status"]) == (request_.id, SQL, "pending")


def test_one_request_in_full(config: Path, request_: ApprovalRequest) -> None:
    full = hoopd("approvals", request_.id, "--config", str(config), token=TOKENS["alice"])
    assert full.status == 0, full.err
    assert f"request     {request_.id}" in full.out
    assert f"command:\n    {SQL}\n" in full.out
    hidden = hoopd("approvals", request_.id, "--config", str(config), token=TOKENS["dave"])
    assert (hidden.status, hidden.err) == (
        1,
        f"hoopd approvals: no approval request '{request_.id}'\n",
    )


def test_refusals_say_why_and_exit_1(
    config: Path, store: ApprovalStore, request_: ApprovalRequest
) -> None:
    c = str(config)
    own = hoopd("approve", request_.id, "--config", c, token=TOKENS["alice"])
    outsider = hoopd("deny", request_.id, "--config", c, "--reason", "no", token=TOKENS["dave"])
    bad_token = hoopd("approve", request_.id, "--config", c, token="hoopd_guess")
    unknown = hoopd("approve", "zzzzzzzzzz", "--config", c, token=TOKENS["bob"])

    assert (own.status, own.err) == (
        1,
        f"hoopd approve: alice cannot decide request {request_.id}: it is their own"
        " (nobody approves their own commands)\n",
    )
    assert outsider.status == 1 and "it needs a member of dba (dave is in dev)" in outsider.err
    assert bad_token.status == 1
    assert bad_token.err == (
        f"hoopd approve: the token is not valid (it is not one of the [[tokens]] in {c},"
        " nor a current gateway token)\n"
    )
    assert (unknown.status, unknown.err) == (
        1,
        "hoopd approve: no approval request 'zzzzzzzzzz'\n",
    )

    denied = hoopd(
        "deny", request_.id, "--config", c, "--reason", "use the replica", token=TOKENS["bob"]
    )
    assert (denied.status, denied.out) == (
        0,
        f"Denied {request_.id}; the requester is told: use the replica\n",
    )
    late = hoopd("approve", request_.id, "--config", c, token=TOKENS["carol"])
    assert (late.status, late.err) == (
        1,
        f"hoopd approve: request {request_.id} is no longer pending:"
        " denied by bob: use the replica\n",
    )


def test_usage_problems_exit_2(config: Path, request_: ApprovalRequest, tmp_path: Path) -> None:
    no_token = hoopd("approvals", "--config", str(config))
    assert no_token.status == 2
    assert "no token: set HOOPD_TOKEN or give your token on standard input" in no_token.err
    no_reason = hoopd("deny", request_.id, "--config", str(config), token=TOKENS["bob"])
    assert no_reason.status == 2 and "--reason" in no_reason.err
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway]\n")
    bad_config = hoopd("approvals", "--config", str(broken), token=TOKENS["bob"])
    assert bad_config.status == 2
    assert "gateway.data_dir: missing (required)" in bad_config.err


async def curl(
    port: int, method: str, path: str, token: str | None, body: str = ""
) -> tuple[int, object]:
    """Status and JSON body of one request made with curl."""
    args = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body:
        args += ["-H", "Content-Type: application/json", "--data-binary", body]
    done = await trio.run_process(args, capture_stdout=True, capture_stderr=True)
    text, _, code = done.stdout.decode().rpartition("\n")
    return int(code), json.loads(text)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_the_admin_api_over_http(
    config: Path, store: ApprovalStore, request_: ApprovalRequest
) -> None:
    verifier = StaticTokenVerifier(load_config(config).tokens)
    path = f"/v1/approvals/{request_.id}"
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_admin_api, store, verifier, "127.0.0.1", 0)

        assert (await curl(port, "GET", "/v1/approvals", None))[0] == 401
        status, listed = await curl(port, "GET", "/v1/approvals", TOKENS["bob"])
        assert status == 200 and isinstance(listed, dict)
        assert [r["id"] for r in listed["approvals"]] == [request_.id]
        assert (await curl(port, "POST", f"{path}/approve", TOKENS["alice"]))[0] == 403
        assert (await curl(port, "POST", f"{path}/deny", TOKENS["bob"], "{bad"))[0] == 400
        status, decided = await curl(
            port, "POST", f"{path}/approve", TOKENS["bob"], '{"reason": "OPS-12"}'
        )
        assert status == 200 and isinstance(decided, dict)
        assert (decided["status"], decided["resolution"]) == ("approved", "approved by bob")
        late, _ = await curl(port, "POST", f"{path}/deny", TOKENS["carol"], '{"reason": "x"}')
        assert late == 409
        assert (await curl(port, "GET", "/v1/approvals/zzzzzzzzzz", TOKENS["bob"]))[0] == 404

        nursery.cancel_scope.cancel()

    stored = store.get(request_.id)
    assert stored is not None and stored.status == "approved"
