"""Forwards that need approval wait for it. A remote forward (``ssh -R``): nothing
listens on the target until someone in the approver group approves it, then the
target's sshd listens and connections there reach the client's side; a denied one
fails like a refused one. Agent forwarding (``ssh -A``): the command waits, saying
so on stderr, and runs with the client's agent once approved. Real ssh -> hoopd ->
a real sshd, and ``hoopd approvals``/``approve``/``deny`` as an approver runs them."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_agent_remote_x11 import (  # noqa: F401 - a fixture
    agent,
    echo_through,
    listener_of,
    remote_forward,
    wait_listening,
)
from tests.integration.test_ssh_engine import (
    SshGateway,
    _finish,
    _read_line_with,
    running_ssh_gateway,
)
from tests.support.echo import EchoServer
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
  - name: agents-need-ops
    match: {kinds: [agent-forward]}
    action: approve
    approvers: [ops]
    deadline: 60s
"""


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(
    sshd: SshServer, echo: EchoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshGateway]:
    workdir = tmp_path_factory.mktemp("gw")
    policy = (
        POLICY
        + f"""  - name: forwards-to-the-echo-need-ops
    match: {{kinds: [forward], destination: ["127.0.0.1:{echo.port}"]}}
    action: approve
    approvers: [ops]
    deadline: 60s
"""
    )
    with running_ssh_gateway(sshd, workdir, policy, [ALICE, CAROL]) as gw:
        yield gw


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


def test_an_agent_forward_waits_for_approval_then_the_target_has_the_agent(
    gateway: SshGateway,
    agent: tuple[Path, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    sock, comment = agent
    client = gateway.client(tmp_path / "c", token=ALICE)
    options = [
        f"IdentityAgent={sock}" if option == "IdentityAgent=none" else option
        for option in client.ssh_options()
    ]
    argv = ["ssh", *options, "-p", str(client.port), "-A", client.destination, "ssh-add -l"]
    proc = client.background(argv)
    try:
        assert proc.stderr is not None
        line = _read_line_with(proc.stderr, "needs approval")
        found = re.search(r"request (\S+?),", line)
        assert found is not None, line
        _as_carol(gateway, "approve", found.group(1), "--reason", "deploy key rotation")
        status, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, err
    assert comment in out  # the target's ssh-add reached the client's agent


def test_a_local_forward_waiting_for_approval_says_so_on_the_open_session(
    gateway: SshGateway, echo: EchoServer, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    port = free_port()
    argv = [
        "ssh", *client.ssh_options(), "-p", str(client.port),
        "-L", f"127.0.0.1:{port}:127.0.0.1:{echo.port}", client.destination, "sleep 60",
    ]  # fmt: skip
    proc = client.background(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:  # ssh listens locally once its session is up
            try:
                local = socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "ssh -L never listened"
                time.sleep(0.1)
        with local:
            assert proc.stderr is not None
            line = _read_line_with(proc.stderr, "needs approval")
            assert f"hoopd: forward to 127.0.0.1:{echo.port}: " in line, line
            found = re.search(r"request (\S+?),", line)
            assert found is not None, line
            connections = echo.connections
            _as_carol(gateway, "approve", found.group(1), "--reason", "one look at the service")
            local.sendall(b"through the approved forward\n")
            assert local.recv(100) == b"through the approved forward\n"
            assert echo.connections == connections + 1
    finally:
        proc.kill()
        proc.wait()
