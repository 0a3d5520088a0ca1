"""A remote forward (``ssh -R``) that needs approval waits: nothing listens on the
target until someone in the approver group approves it, then the target's sshd
listens and connections there reach the client's side; a denied one fails like a
refused one. Real ssh -> hoopd -> a real sshd, and ``hoopd approvals``/``approve``/
``deny`` as an approver runs them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_agent_remote_x11 import (
    echo_through,
    listener_of,
    remote_forward,
    wait_listening,
)
from tests.integration.test_ssh_engine import SshGateway, running_ssh_gateway
from tests.integration.test_ssh_sftp_forward import EchoServer
from tests.support.gateway import Token, parse_json_records
from tests.support.ports import free_port
from tests.support.sshserver import SshServer

ALICE = Token("alice", ("dev",))
CAROL = Token("carol", ("ops",))
WAIT_SECONDS = 15.0

POLICY = """
defaults:
  - unmatched: allow
rules:
  - name: remote-forwards-need-ops
    match: {kinds: [remote-forward], destination: ["127.0.0.1:*"]}
    action: approve
    approvers: [ops]
    deadline: 60s
"""


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    workdir = tmp_path_factory.mktemp("gw")
    with running_ssh_gateway(sshd, workdir, POLICY, [ALICE, CAROL]) as gw:
        yield gw


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _as_carol(gw: SshGateway, *args: str) -> Any:
    done = gw.cli(*args, "--config", str(gw.config_path), extra_env={"HOOPD_TOKEN": CAROL.value})
    assert done.returncode == 0, done.stderr
    return done


def _request_for(gw: SshGateway, port: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for request in parse_json_records(_as_carol(gw, "approvals", "--json").stdout):
            if f"127.0.0.1:{port}" in request["command"]:
                return request
        time.sleep(0.2)
    raise AssertionError(f"no approval request for a remote forward on {port}")


def test_a_remote_forward_waits_for_approval_then_listens(
    gateway: SshGateway, sshd: SshServer, echo: EchoServer, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    port = free_port()
    with remote_forward(client, f"127.0.0.1:{port}:127.0.0.1:{echo.port}") as proc:
        request = _request_for(gateway, port)
        assert request["rule"] == "remote-forwards-need-ops"
        time.sleep(0.5)
        assert listener_of(port) == ""  # nothing listens on the target while it waits
        _as_carol(gateway, "approve", request["id"], "--reason", "debugging session")
        assert '"sshd"' in wait_listening(port, proc, client.dir / "remote-forward.stderr")
        assert echo_through(sshd, port, b"approved\n") == b"approved\n"


def test_a_denied_remote_forward_fails_and_nothing_listens(
    gateway: SshGateway, echo: EchoServer, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    port = free_port()
    with remote_forward(client, f"127.0.0.1:{port}:127.0.0.1:{echo.port}") as proc:
        request = _request_for(gateway, port)
        _as_carol(gateway, "deny", request["id"], "--reason", "not today")
        status = proc.wait(timeout=WAIT_SECONDS)
    assert status == 255  # ExitOnForwardFailure
    stderr = (client.dir / "remote-forward.stderr").read_text(errors="replace")
    assert "remote port forwarding failed" in stderr
    assert listener_of(port) == ""
