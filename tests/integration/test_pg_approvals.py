"""Just-in-time approval through the gateway: real psql waits while a person decides,
with the `hoopd approve` command or the admin HTTP API (driven with curl)."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.support.gateway import (
    Gateway,
    Token,
    parse_json_records,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.pgserver import Completed, PgServer
from tests.support.ports import free_port

POLICY = """\
rules:
  - name: everything
    match: {}
    action: allow
  - name: deletes-need-a-dba
    match:
      kinds: [delete]
    action: approve
    approvers: [dba]
    deadline: 60s
    message: deleting rows needs a DBA's approval
"""

ALICE = Token("alice", ("dev",))
BOB = Token("bob", ("dba",))
WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy_dir = tmp_path_factory.mktemp("approval-policy")
    (policy_dir / "rules.yaml").write_text(POLICY)
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("gw-approvals"),
        tokens=[ALICE, BOB],
        policy_dir=policy_dir,
        admin_port=free_port(),
    ) as gateway:
        yield gateway


def _as(gw: Gateway, token: Token, *args: str) -> Completed:
    """``hoopd ARGS --config ...`` run by the holder of ``token`` (read from HOOPD_TOKEN)."""
    return gw.cli(*args, "--config", str(gw.config_path), extra_env={"HOOPD_TOKEN": token.value})


def _pending(gw: Gateway) -> list[dict[str, Any]]:
    done = _as(gw, BOB, "approvals", "--json")
    assert done.returncode == 0, done.stderr
    return parse_json_records(done.stdout)


def _wait_for_request(gw: Gateway, marker: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for request in _pending(gw):
            if marker in request["command"]:
                return request
        time.sleep(0.2)
    raise AssertionError(f"no approval request for {marker}")


def _start_psql(gw: Gateway, sql: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", gw.conninfo(), "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=gw.client_env(ALICE),
    )


def _insert_mark(pg: PgServer, marker: str) -> None:
    pg.superuser_sql(f"insert into audit_marks (marker) values ('{marker}')")


def test_approved_with_the_cli_the_statement_runs(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("appr")
    _insert_mark(pg, marker)
    before = session_ids(gw)
    psql = _start_psql(gw, f"delete from audit_marks where marker = '{marker}'")
    try:
        request = _wait_for_request(gw, marker)
        assert request["requester"] == "alice" and request["rule"] == "deletes-need-a-dba"
        assert pg.audit_marks(marker) == 1  # still waiting: nothing ran yet
        # Nobody approves their own statement.
        own = _as(gw, ALICE, "approve", request["id"], "--reason", "mine")
        assert own.returncode == 1 and pg.audit_marks(marker) == 1
        done = _as(gw, BOB, "approve", request["id"], "--reason", "ticket 42")
        assert done.returncode == 0, done.stderr
        out, err = psql.communicate(timeout=WAIT_SECONDS)
    finally:
        psql.kill()
    assert psql.returncode == 0, err
    assert f"needs approval (request {request['id']}" in err  # the NOTICE psql printed
    assert "DELETE 1" in out
    assert pg.audit_marks(marker) == 0
    records = gw.replay(session_id_of(wait_for_new_session(gw, before)))
    statement = next(r for r in records if r["kind"] == "statement")
    approval = statement["body"]["approval"]
    assert approval["status"] == "approved"
    assert [(d["approver"], d["decision"], d["reason"]) for d in approval["decisions"]] == [
        ("bob", "approve", "ticket 42")
    ]


def test_denied_through_the_http_api_the_statement_never_runs(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("deny")
    _insert_mark(pg, marker)
    psql = _start_psql(gw, f"delete from audit_marks where marker = '{marker}'")
    try:
        request = _wait_for_request(gw, marker)
        url = f"http://127.0.0.1:{gw.admin_port}/v1/approvals/{request['id']}/deny"
        curl = subprocess.run(
            ["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {BOB.value}",
             "-H", "Content-Type: application/json", "-d", '{"reason": "not today"}', url],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["status"] == "denied"
        _, err = psql.communicate(timeout=WAIT_SECONDS)
    finally:
        psql.kill()
    assert psql.returncode != 0
    assert "not today" in err
    assert pg.audit_marks(marker) == 1


def test_client_going_away_cancels_the_request(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("gone")
    _insert_mark(pg, marker)
    psql = _start_psql(gw, f"delete from audit_marks where marker = '{marker}'")
    request = _wait_for_request(gw, marker)
    psql.kill()
    psql.wait(timeout=10)
    deadline = time.monotonic() + WAIT_SECONDS
    while any(r["id"] == request["id"] for r in _pending(gw)):
        assert time.monotonic() < deadline, "the request stayed pending"
        time.sleep(0.2)
    late = _as(gw, BOB, "approve", request["id"], "--reason", "too late")
    assert late.returncode == 1
    assert pg.audit_marks(marker) == 1


def test_statements_not_needing_approval_do_not_wait(gw: Gateway) -> None:
    started = time.monotonic()
    done = gw.psql("-At", "-c", "select 42", token=ALICE)
    assert done.returncode == 0 and done.stdout.strip() == "42"
    assert not [r for r in _pending(gw) if "select 42" in r["command"]]
    assert time.monotonic() - started < WAIT_SECONDS


def test_two_gateways_sharing_a_store_see_the_same_requests(
    pg: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A statement waiting in one gateway is approved through the other's admin API."""
    policy_dir = tmp_path_factory.mktemp("shared-policy")
    (policy_dir / "rules.yaml").write_text(POLICY)
    store = tmp_path_factory.mktemp("shared-store")
    common = {"tokens": [ALICE, BOB], "policy_dir": policy_dir, "approvals_store_dir": store}
    marker = unique_marker("shared")
    _insert_mark(pg, marker)
    with (
        running_gateway(pg, tmp_path_factory.mktemp("gw-a"), **common) as waiting,
        running_gateway(
            pg, tmp_path_factory.mktemp("gw-b"), admin_port=free_port(), **common
        ) as deciding,
    ):
        psql = _start_psql(waiting, f"delete from audit_marks where marker = '{marker}'")
        try:
            request = _wait_for_request(deciding, marker)  # listed through the other one
            base = f"http://127.0.0.1:{deciding.admin_port}/v1/approvals/{request['id']}"
            auth = ["-H", f"Authorization: Bearer {BOB.value}"]
            shown = subprocess.run(
                ["curl", "-sS", *auth, base], capture_output=True, text=True, timeout=30
            )
            assert json.loads(shown.stdout)["status"] == "pending"
            approve = subprocess.run(
                ["curl", "-sS", "-X", "POST", *auth, "-d", '{"reason": "shared"}',
                 f"{base}/approve"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert json.loads(approve.stdout)["status"] == "approved", approve.stdout
            out, err = psql.communicate(timeout=WAIT_SECONDS)
        finally:
            psql.kill()
    assert psql.returncode == 0, err
    assert "DELETE 1" in out
    assert pg.audit_marks(marker) == 0


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Keeps every JSON body POSTed to it (a stand-in for a chat or ticket system)."""

    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_webhook_hears_of_the_request_and_its_decision(
    pg: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    policy_dir = tmp_path_factory.mktemp("webhook-policy")
    (policy_dir / "rules.yaml").write_text(POLICY)
    marker = unique_marker("hook")
    _insert_mark(pg, marker)
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        with running_gateway(
            pg,
            tmp_path_factory.mktemp("gw-hook"),
            tokens=[ALICE, BOB],
            policy_dir=policy_dir,
            webhook_url=url,
        ) as gateway:
            psql = _start_psql(gateway, f"delete from audit_marks where marker = '{marker}'")
            try:
                request = _wait_for_request(gateway, marker)
                assert _as(gateway, BOB, "deny", request["id"], "--reason", "no").returncode == 0
                psql.communicate(timeout=WAIT_SECONDS)
            finally:
                psql.kill()
            deadline = time.monotonic() + WAIT_SECONDS
            while len(_Receiver.bodies) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        receiver.shutdown()
    events = [(body["event"], body["request"]["id"]) for body in _Receiver.bodies]
    assert events == [
        ("approval.requested", request["id"]),
        ("approval.decided", request["id"]),
    ]
    assert _Receiver.bodies[1]["request"]["status"] == "denied"
    assert marker in _Receiver.bodies[0]["request"]["command"]
