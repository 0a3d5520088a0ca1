"""Remote forwarding (``ssh -R``), agent forwarding (``ssh -A``) and X11
(``ssh -Y``) through the SSH engine, end to end: real ``ssh`` -> hoopd -> a real
sshd, each refused unless a policy rule names it.

Each test checks the target's side (what listens there, what a program run there
reaches, what a session there sees of the agent or the display) and what hoopd
recorded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    _asyncssh_client,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.echo import EchoServer
from tests.support.gateway import Token, session_ids
from tests.support.ports import free_port
from tests.support.sshclient import SshClient, SshResult, wait_while_ssh_runs
from tests.support.sshserver import SshServer

ALICE = Token("alice", ("dev",))
BOB = Token("bob", ("dev",))

POLICY = """
rules:
  - name: remote-forwards-on-loopback
    match: {kinds: [remote-forward], destination: ["127.0.0.1:*"]}
    action: allow
  - name: alice-may-forward-her-agent
    match: {kinds: [agent-forward], identity: {subject: alice}}
    action: allow
  - name: alice-may-forward-her-display
    match: {kinds: [x11], identity: {subject: alice}}
    action: allow
  - name: the-rest
    action: allow
"""
"""``the-rest`` matches everything, yet allows none of these kinds: only a rule
naming ``remote-forward``, ``agent-forward`` or ``x11`` can."""

LISTEN_DEADLINE_SECONDS = 15.0


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    workdir = tmp_path_factory.mktemp("gw")
    with running_ssh_gateway(sshd, workdir, POLICY, [ALICE, BOB]) as gw:
        yield gw
    assert_clean_log(gw)


def assert_clean_log(gw: SshGateway) -> None:
    """No task of a forward or an agent failed, or was left behind, in the gateway."""
    log = gw.stderr_text()
    for sign in ("Traceback", "never retrieved", "destroyed but it is pending", "failed"):
        assert sign not in log, log[-4000:]


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    """A loopback service on the client's side, for the target to reach through -R."""
    server = EchoServer()
    yield server
    server.close()


# ------------------------------------------------------------------- helpers


def listener_of(port: int) -> str:
    """``ss``'s line for a TCP listener on 127.0.0.1:``port`` (with its process), or ''."""
    done = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


def wait_listening(port: int, proc: subprocess.Popen[bytes], stderr: Path) -> str:
    """Once ssh has its answer (the gateway has the target's listener), ``ss``'s line
    for the target's listener on ``port``."""

    def listening() -> str:
        answered = "remote forward success" in stderr.read_text(errors="replace")
        return listener_of(port) if answered else ""

    return wait_while_ssh_runs(
        proc, stderr, listening, f"nothing listened on {port}", LISTEN_DEADLINE_SECONDS
    )


def echo_through(sshd: SshServer, port: int, data: bytes) -> bytes:
    """Connect to 127.0.0.1:``port`` as the target's user (a program on the target),
    send ``data``, and return what comes back before the peer closes."""
    script = (
        "import socket,sys\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
        "s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)\n"
        "out = b''\n"
        "while chunk := s.recv(65536): out += chunk\n"
        "sys.stdout.buffer.write(out)\n"
    )
    done = sshd.run_as_target(f"/usr/bin/python3 -c {shlex.quote(script)}", input=data)
    return done.stdout


@contextlib.contextmanager
def remote_forward(client: SshClient, spec: str) -> Iterator[subprocess.Popen[bytes]]:
    """``ssh -N -R spec`` (``ExitOnForwardFailure=yes``), ended by PID on exit; ``-v``
    so that its stderr says when the forward is set up (a connection to the target's
    port before the gateway has read the target's answer would be refused)."""
    with client.forwarding(["-v", "-R", spec], client.dir / "remote-forward.stderr") as proc:
        yield proc


def data_of(records: list[dict[str, Any]], kind: str, channel: int) -> bytes:
    return b"".join(
        base64.b64decode(r["body"]["data"]["base64"])
        for r in records
        if r["kind"] == kind and r["body"].get("channel") == channel
    )


def statements(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["kind"] == "statement" and r["body"]["kind"] == kind]


# --------------------------------------------------------------- remote (-R)


def test_an_allowed_remote_forward_listens_on_the_target_and_reaches_the_client(
    gateway: SshGateway, sshd: SshServer, echo: EchoServer, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    port = free_port()
    before = session_ids(gateway)
    with remote_forward(client, f"127.0.0.1:{port}:127.0.0.1:{echo.port}") as proc:
        line = wait_listening(port, proc, client.dir / "remote-forward.stderr")
        # The target's sshd listens (as the target's user's session), not hoopd.
        assert '"sshd"' in line, line
        got = echo_through(sshd, port, b"ping from the target\n")
        assert got == b"ping from the target\n"
        assert echo.connections >= 1
    # The session has ended: the target's listener is gone with it.
    deadline = time.monotonic() + 10
    while listener_of(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listener_of(port) == ""

    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "remote-forward")
    assert statement["destination"] == f"127.0.0.1:{port}"
    assert statement["verdict"]["action"] == "allow"
    assert statement["verdict"]["rule"] == "remote-forwards-on-loopback"
    [listening] = [r["body"] for r in records if r["kind"] == "remote_forward"]
    assert listening == {"listen": f"127.0.0.1:{port}", "port": port}
    [opened] = [r["body"] for r in records if r["kind"] == "channel_open"]
    assert opened["type"] == "remote-forward" and opened["listen"] == f"127.0.0.1:{port}"
    assert opened["origin"].startswith("127.0.0.1:")
    number = opened["channel"]
    # stdout: what the program on the target sent; stdin: what came back from the client.
    assert data_of(records, "stdout", number) == b"ping from the target\n"
    assert data_of(records, "stdin", number) == b"ping from the target\n"
    [closed] = [r["body"] for r in records if r["kind"] == "channel_close"]
    assert closed == {"channel": number, "to_target": 21, "to_client": 21}


def test_a_dynamic_remote_port_is_the_targets_choice(
    gateway: SshGateway, sshd: SshServer, echo: EchoServer, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    with remote_forward(client, f"127.0.0.1:0:127.0.0.1:{echo.port}") as proc:
        stderr = client.dir / "remote-forward.stderr"
        wait_while_ssh_runs(
            proc,
            stderr,
            lambda: "Allocated port" in stderr.read_text(errors="replace"),
            "ssh never said which port the target allocated",
            LISTEN_DEADLINE_SECONDS,
        )
        port = int(stderr.read_text().split("Allocated port ", 1)[1].split()[0])
        assert '"sshd"' in wait_listening(port, proc, stderr)
        assert echo_through(sshd, port, b"dynamic") == b"dynamic"


def test_a_refused_remote_forward_fails_and_nothing_listens_on_the_target(
    gateway: SshGateway, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    port = free_port()
    before = session_ids(gateway)
    # Not on 127.0.0.1: no rule allows it (the-rest matches, but does not name the kind).
    spec = ["-o", "ExitOnForwardFailure=yes", "-R", f"localhost:{port}:127.0.0.1:9"]
    done = client.ssh("true", options=spec)
    assert done.returncode == 255 and "remote port forwarding failed" in done.err, done.err
    assert listener_of(port) == ""

    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "remote-forward")
    assert statement["destination"] == f"localhost:{port}"
    assert statement["verdict"]["action"] == "deny"
    assert statement["verdict"]["rule"] is None
    message = statement["verdict"]["message"]
    assert "remote-forward is refused unless a rule allows it by name" in message
    assert not [r for r in records if r["kind"] == "remote_forward"]


def test_cancelling_a_remote_forward_closes_the_targets_listener(
    gateway: SshGateway, echo: EchoServer
) -> None:
    port = free_port()

    async def listen_then_cancel() -> tuple[str, str]:
        async with _asyncssh_client(gateway) as conn:
            listener = await conn.forward_remote_port("127.0.0.1", port, "127.0.0.1", echo.port)
            while not (listening := listener_of(port)):
                await asyncio.sleep(0.05)
            listener.close()
            await listener.wait_closed()
            deadline = time.monotonic() + 10
            while (after := listener_of(port)) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return listening, after

    before = session_ids(gateway)
    listening, after = asyncio.run(asyncio.wait_for(listen_then_cancel(), 30))
    assert '"sshd"' in listening and after == ""
    _, records = new_session_records(gateway, before)
    assert [r["body"] for r in records if r["kind"] == "remote_forward_end"] == [
        {"listen": f"127.0.0.1:{port}"}
    ]


def test_a_gateway_that_stops_closes_the_targets_listener(
    sshd: SshServer, echo: EchoServer, tmp_path: Path
) -> None:
    (tmp_path / "gw").mkdir()
    with running_ssh_gateway(sshd, tmp_path / "gw", POLICY, [ALICE]) as gw:
        client = gw.client(tmp_path / "c")
        port = free_port()
        with remote_forward(client, f"127.0.0.1:{port}:127.0.0.1:{echo.port}") as proc:
            wait_listening(port, proc, client.dir / "remote-forward.stderr")
            assert gw.stop() == 0
            proc.wait(timeout=10)  # ssh sees its connection end
    deadline = time.monotonic() + 10
    while listener_of(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listener_of(port) == ""
    assert_clean_log(gw)


# ---------------------------------------------------------------- agent (-A)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A real ssh-agent holding one key: (its socket, the key's comment)."""
    workdir = tmp_path_factory.mktemp("agent")
    sock = Path(f"/tmp/hoopd-test-agent-{os.getpid()}-{time.monotonic_ns()}.sock")
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        key = workdir / "id_ed25519"
        comment = "forwarded-agent-key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        subprocess.run(["ssh-add", str(key)], check=True, capture_output=True, env=env, timeout=30)
        yield sock, comment
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        sock.unlink(missing_ok=True)


def ssh_a(client: SshClient, sock: Path, command: str) -> SshResult:
    """``ssh -A`` with ``sock`` as the client's agent. Every client's options say
    ``IdentityAgent=none`` (no agent leaks in), which also turns forwarding off;
    here it names the test's agent instead. ``PubkeyAuthentication=no`` stays, so
    the agent is never used to log in to the gateway."""
    options = [
        f"IdentityAgent={sock}" if option == "IdentityAgent=none" else option
        for option in client.ssh_options()
    ]
    argv = ["ssh", *options, "-p", str(client.port), "-A", client.destination, command]
    return client.run(argv)


def test_an_allowed_agent_is_usable_on_the_target(
    gateway: SshGateway, agent: tuple[Path, str], tmp_path: Path
) -> None:
    sock, comment = agent
    client = gateway.client(tmp_path / "c", token=ALICE)
    before = session_ids(gateway)
    done = ssh_a(client, sock, "ssh-add -l").check()
    assert comment in done.out and "ED25519" in done.out

    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "agent-forward")
    assert statement["verdict"]["action"] == "allow"
    assert statement["verdict"]["rule"] == "alice-may-forward-her-agent"
    opened = [r["body"] for r in records if r["kind"] == "channel_open"]
    agents = [body for body in opened if body["type"] == "agent"]
    assert agents and all(body["session_channel"] == 1 for body in agents)
    closes = {r["body"]["channel"]: r["body"] for r in records if r["kind"] == "channel_close"}
    for body in agents:
        assert closes[body["channel"]]["to_target"] > 0  # the agent answered
        # Only counts: the agent's messages are not in the recording.
        assert not data_of(records, "stdin", body["channel"])
        assert not data_of(records, "stdout", body["channel"])


def test_a_refused_agent_is_not_offered_to_the_target(
    gateway: SshGateway, agent: tuple[Path, str], tmp_path: Path
) -> None:
    sock, _ = agent
    client = gateway.client(tmp_path / "c", token=BOB)
    before = session_ids(gateway)
    done = ssh_a(client, sock, "echo ${SSH_AUTH_SOCK:-none}").check()
    assert done.out == "none\n"
    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "agent-forward")
    assert statement["verdict"]["action"] == "deny" and statement["verdict"]["rule"] is None
    assert not [r for r in records if r["kind"] == "channel_open" and r["body"]["type"] == "agent"]


def test_a_client_that_does_not_forward_its_agent_is_not_asked_about(
    gateway: SshGateway, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "c", token=ALICE)
    before = session_ids(gateway)
    assert client.ssh("echo ${SSH_AUTH_SOCK:-none}").check().out == "none\n"
    _, records = new_session_records(gateway, before)
    assert not statements(records, "agent-forward")


# ------------------------------------------------------------------ X11 (-Y)

X11_CLIENT = r"""
import os, socket, struct, subprocess, sys
display = os.environ.get("DISPLAY")
if not display:
    print("no DISPLAY"); sys.exit(3)
host, number = display.rsplit(":", 1)
listed = subprocess.run(["xauth", "list", display], capture_output=True, text=True).stdout.split()
name, cookie = listed[1].encode(), bytes.fromhex(listed[2])
pad = lambda b: b + bytes(-len(b) % 4)
setup = b"l\0" + struct.pack("<HHHH", 11, 0, len(name), len(cookie)) + bytes(2)
s = socket.create_connection((host or "127.0.0.1", 6000 + int(number.split(".")[0])), timeout=10)
s.sendall(setup + pad(name) + pad(cookie))
print(s.recv(100).decode())
s.sendall(b"drawn on the target")
print(s.recv(100).decode())
"""
"""A program on the target speaking just enough X11: the connection setup with
the cookie sshd gave its session (what every X client sends first, and what each
SSH hop checks and replaces); once the server has answered it, some bytes. It
prints both answers."""


class FakeXServer:
    """A loopback TCP listener standing in for the client's X server (display
    ``127.0.0.1:N``): for each connection, reads the X11 connection setup and
    answers it, then records what follows until it has seen ``expect``, answers
    again, and closes."""

    def __init__(self, expect: bytes) -> None:
        self.expect = expect
        for number in range(40, 100):
            try:
                self.sock = socket.create_server(("127.0.0.1", 6000 + number))
            except OSError:
                continue
            self.display = f"127.0.0.1:{number}"
            break
        else:
            raise AssertionError("no free X display port on 127.0.0.1")
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                try:
                    while len(data) < 12 or len(data) < self._setup_length(data):
                        if not (chunk := conn.recv(65536)):
                            break
                        data += chunk
                    conn.sendall(b"setup accepted")
                    while self.expect not in data and (chunk := conn.recv(65536)):
                        data += chunk
                    conn.sendall(b"answered by the client's X server")
                except OSError:
                    pass  # the test says what arrived
                self.received.append(data)

    @staticmethod
    def _setup_length(prefix: bytes) -> int:
        """The length of a little-endian X11 connection setup (prefix, padded name
        and data)."""
        name, data = int.from_bytes(prefix[6:8], "little"), int.from_bytes(prefix[8:10], "little")
        return 12 + (name + 3) // 4 * 4 + (data + 3) // 4 * 4

    def close(self) -> None:
        self.sock.close()


def ssh_y(client: SshClient, display: str, command: str) -> SshResult:
    """``ssh -Y`` (trusted: ``-X`` would ask the X server for a cookie with
    ``xauth generate``, which a stand-in cannot answer) with ``display`` as DISPLAY."""
    argv = ["ssh", *client.ssh_options(), "-p", str(client.port), "-Y", client.destination]
    return client.run([*argv, command], extra_env={"DISPLAY": display})


def test_an_allowed_display_reaches_the_clients_x_server(
    gateway: SshGateway, tmp_path: Path
) -> None:
    if shutil.which("xauth") is None:
        pytest.fail("xauth is required (packaging/system-deps.sh)")
    server = FakeXServer(b"drawn on the target")
    try:
        client = gateway.client(tmp_path / "c", token=ALICE)
        before = session_ids(gateway)
        program = f"/usr/bin/python3 -c {shlex.quote(X11_CLIENT)}"
        done = ssh_y(client, server.display, program).check()
        assert done.out == "setup accepted\nanswered by the client's X server\n", done.err
        [received] = server.received
        # The setup arrived as an X client sends it (with the client's own cookie
        # substituted by ssh), then the program's bytes.
        assert received[:6] == b"l\0" + (11).to_bytes(2, "little") + bytes(2)
        assert received.endswith(b"drawn on the target")
    finally:
        server.close()
    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "x11")
    assert statement["text"] == "forward X11 to channel 1"
    assert statement["verdict"] == {"action": "allow", "rule": "alice-may-forward-her-display"}


def test_a_refused_display_is_not_offered_to_the_target(
    gateway: SshGateway, tmp_path: Path
) -> None:
    server = FakeXServer(b"drawn on the target")
    try:
        client = gateway.client(tmp_path / "c", token=BOB)
        before = session_ids(gateway)
        done = ssh_y(client, server.display, "echo ${DISPLAY:-none}").check()
        assert done.out == "none\n"
        assert server.received == []
    finally:
        server.close()
    _, records = new_session_records(gateway, before)
    [statement] = statements(records, "x11")
    assert statement["verdict"]["action"] == "deny" and statement["verdict"]["rule"] is None


# ------------------------------------------------------------------- no policy


def test_without_a_policy_nothing_is_forwarded(
    sshd: SshServer, agent: tuple[Path, str], tmp_path: Path
) -> None:
    """No policy at all lets commands through, but none of these kinds."""
    gw = SshGateway(sshd, tmp_path / "gw", tokens=[ALICE])
    gw.start()
    server = FakeXServer(b"drawn on the target")
    try:
        client = gw.client(tmp_path / "c")
        done = ssh_a(client, agent[0], "echo ${SSH_AUTH_SOCK:-none}").check()
        assert done.out == "none\n"
        assert ssh_y(client, server.display, "echo ${DISPLAY:-none}").check().out == "none\n"
        spec = ["-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:9"]
        done = client.ssh("true", options=spec)
        assert done.returncode == 255 and "remote port forwarding failed" in done.err
    finally:
        server.close()
        gw.stop()
