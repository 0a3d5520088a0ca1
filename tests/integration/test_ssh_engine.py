"""The SSH engine end to end: real OpenSSH clients -> hoopd -> a real sshd.

Each test looks at the target's side as well (files written there, sshd's log),
and at what hoopd recorded (``hoopd replay --json``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import resource
import secrets
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import asyncssh
import pytest

from hoopd.protocols.ssh.hostkey import host_key_path
from tests.support.gateway import (
    Gateway,
    Token,
    gateway_token_id,
    session_ids,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer
from tests.support.ports import free_port
from tests.support.sshclient import SshClient, TmuxSession
from tests.support.sshserver import SshServer, running_sshd

CONNECTION = "web"


class SshGateway(Gateway):
    """The test gateway with one SSH connection to ``sshd`` (and no PostgreSQL).

    tests/support/gateway.py writes PostgreSQL connections only; this adds an
    ``[[connections]]`` entry with ``protocol = "ssh"`` to the file it writes.
    """

    def __init__(
        self,
        sshd: SshServer,
        workdir: Path,
        *,
        host_key: str | None = None,
        known_hosts: Path | None = None,
        password: bool = False,
        logins: Sequence[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(cast(PgServer, None), workdir, routes=[], **options)
        self.sshd = sshd
        self.ssh_port = free_port()
        self.pinned_host_key = host_key if host_key is not None else sshd.host_key
        self.known_hosts = known_hosts
        self.password = password
        self.logins = list(logins)

    def write_config(self) -> None:
        super().write_config()
        lines = [
            "",
            "[[connections]]",
            f'name = "{CONNECTION}"',
            'protocol = "ssh"',
            f'listen = "127.0.0.1:{self.ssh_port}"',
            "  [connections.target]",
            '  host = "127.0.0.1"',
            f"  port = {self.sshd.port}",
            f'  user = "{self.sshd.user}"',
            f"  secret = {{ file = {json.dumps(str(self._secret_file()))} }}",
            f'  auth = "{"password" if self.password else "key"}"',
            (
                f"  known_hosts = {json.dumps(str(self.known_hosts))}"
                if self.known_hosts is not None
                else f'  host_key = "{self.pinned_host_key}"'
            ),
            "  logins = [" + ", ".join(f'"{login}"' for login in self.logins) + "]",
            "",
        ]
        with open(self.config_path, "a") as config:
            config.write("\n".join(lines))

    def _secret_file(self) -> Path:
        if not self.password:
            return self.sshd.client_key
        path = self.workdir / "target-password"
        path.write_text(self.sshd.password + "\n")
        path.chmod(0o600)
        return path

    def host_key_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...``: hoopd's key, for a client."""
        key = asyncssh.read_private_key(host_key_path(self.data_dir))
        public = key.export_public_key().decode().split()
        return f"[127.0.0.1]:{self.ssh_port} {public[0]} {public[1]}"

    def client(
        self, workdir: Path, token: Token | str | None = None, user: str = CONNECTION
    ) -> SshClient:
        value = self.token.value if token is None else token
        if isinstance(value, Token):
            value = value.value
        return SshClient(
            "127.0.0.1",
            self.ssh_port,
            user,
            workdir,
            password=value,
            known_hosts=[self.host_key_line()],
        )


@contextlib.contextmanager
def running_ssh_gateway(
    sshd: SshServer, workdir: Path, policy: str, tokens: Sequence[Token], **options: Any
) -> Iterator[SshGateway]:
    """A started gateway in front of ``sshd`` with ``policy`` (YAML) as its only
    policy file; stopped on exit."""
    policy_dir = workdir / "policy"
    policy_dir.mkdir()
    (policy_dir / "rules.yaml").write_text(policy)
    gw = SshGateway(sshd, workdir, policy_dir=policy_dir, tokens=list(tokens), **options)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


POLICY = """
rules:
  - name: no-shadow
    match: {command: ["cat /etc/shadow*", "* /etc/shadow*"]}
    action: deny
    message: /etc/shadow stays on the host
  - name: no-denied-markers
    match: {command: ["touch denied-*"]}
    action: deny
    message: this marker may not be written
  - name: restarts-need-approval
    match: {command: ["approve-me *"]}
    action: approve
    approvers: [ops]
    deadline: 60s
  - name: no-forwards
    match: {kinds: [forward]}
    action: deny
    message: no forwarding here
  - name: the-rest
    action: allow
"""


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    tokens = [Token("alice", ("dev",)), Token("bob", ("dev",)), Token("carol", ("ops",))]
    workdir = tmp_path_factory.mktemp("gw")
    with running_ssh_gateway(sshd, workdir, POLICY, tokens, auth_failure_delay_seconds=0.3) as gw:
        yield gw


@pytest.fixture
def client(gateway: SshGateway, tmp_path: Path) -> SshClient:
    return gateway.client(tmp_path / "client")


@pytest.fixture
def scratch(sshd: SshServer) -> Iterator[str]:
    """A fresh directory under the target's home, removed afterwards."""
    name = "t-" + secrets.token_hex(6)
    sshd.run_as_target(f"mkdir {name}")
    yield name
    sshd.remove_target_path(name)


def data_of(records: list[dict[str, Any]], kind: str, channel: int = 1) -> bytes:
    """Every ``kind`` record's data on ``channel``, joined."""
    chunks = []
    for record in records:
        if record["kind"] == kind and record["body"]["channel"] == channel:
            chunks.append(base64.b64decode(record["body"]["data"]["base64"]))
    return b"".join(chunks)


def new_session_records(
    gateway: SshGateway, before: set[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    session = wait_for_new_session(gateway, before)
    deadline = time.monotonic() + 10
    while True:  # the index row's end is written when the session has closed
        records = gateway.replay(session["id"])
        if records and records[-1]["kind"] == "session_end":
            return session, records
        assert time.monotonic() < deadline, records
        time.sleep(0.1)


# ------------------------------------------------------------------------ exec


def test_exec_output_exit_status_and_the_target_side(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str
) -> None:
    before = session_ids(gateway)
    mark = sshd.log_mark()
    done = client.ssh(f"cd {scratch} && echo hi > made.txt && cat made.txt; echo err >&2; exit 7")
    assert done.returncode == 7, done.err
    assert done.out == "hi\n"
    assert "err" in done.err
    assert sshd.read_target_file(f"{scratch}/made.txt") == b"hi\n"
    sshd.wait_for_log(rf"Accepted publickey for {sshd.user} from 127\.0\.0\.1", since=mark)

    session, records = new_session_records(gateway, before)
    assert session["protocol"] == "ssh" and session["connection"] == CONNECTION
    assert session["identity"]["subject"] == "alice"
    assert session["attributes"]["login"] == sshd.user
    kinds = [r["kind"] for r in records]
    assert kinds[:3] == ["session_start", "channel_open", "statement"], kinds
    statement = records[2]["body"]
    assert statement["kind"] == "exec" and statement["text"].startswith(f"cd {scratch}")
    assert statement["argv"][:2] == ["cd", scratch]
    assert statement["verdict"]["action"] == "allow"
    assert data_of(records, "stdout") == b"hi\n"
    assert b"err" in data_of(records, "stderr")
    assert [r["body"] for r in records if r["kind"] == "exit"] == [{"channel": 1, "status": 7}]
    assert session["end_reason"] == "client disconnected"


def test_exec_relays_stdin_and_large_binary_output(client: SshClient) -> None:
    data = secrets.token_bytes(3 * 1024 * 1024)
    done = client.ssh("sha256sum; head -c 5000000 /dev/zero", input=data).check()
    digest = hashlib.sha256(data).hexdigest().encode()
    assert done.stdout.startswith(digest)
    assert len(done.stdout) == len(digest) + len(b"  -\n") + 5_000_000


def test_denied_exec_never_reaches_the_target(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str
) -> None:
    before = session_ids(gateway)
    done = client.ssh(f"touch denied-marker; touch {scratch}/ran")
    assert done.returncode == 1
    assert "hoopd: this marker may not be written" in done.err
    assert done.out == ""
    assert not sshd.target_path(f"{scratch}/ran").exists()
    assert not sshd.target_path("denied-marker").exists()
    _session, records = new_session_records(gateway, before)
    statement = next(r["body"] for r in records if r["kind"] == "statement")
    assert statement["verdict"]["action"] == "deny"
    assert statement["verdict"]["rule"] == "no-denied-markers"
    exits = [r["body"] for r in records if r["kind"] == "exit"]
    assert exits == [{"channel": 1, "status": 1, "refused": True}]

    # The same for a command line that reads a file the policy protects.
    done = client.ssh("cat /etc/shadow")
    assert done.returncode == 1 and "hoopd: /etc/shadow stays on the host" in done.err


@contextlib.asynccontextmanager
async def _asyncssh_client(gateway: SshGateway) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """asyncssh as a client of the gateway: for what OpenSSH's ssh does not do on
    its own (several channels on one connection, signals)."""
    key = asyncssh.import_public_key(gateway.host_key_line().split(" ", 1)[1])
    async with asyncssh.connect(
        "127.0.0.1",
        gateway.ssh_port,
        username=CONNECTION,
        password=gateway.token.value,
        known_hosts=([key], [], []),
        client_keys=None,
        agent_path=None,
        config=None,
        preferred_auth="password",
    ) as conn:
        yield conn


def test_signals_reach_the_target_and_the_signal_comes_back(gateway: SshGateway) -> None:
    async def signalled() -> str | None:
        async with _asyncssh_client(gateway) as conn:
            process = await conn.create_process("echo up; exec sleep 30", encoding=None)
            assert await process.stdout.readline() == b"up\n"
            process.send_signal("TERM")
            await asyncio.wait_for(process.wait_closed(), 15)
            return process.exit_signal[0] if process.exit_signal else None

    before = session_ids(gateway)
    assert asyncio.run(signalled()) == "TERM"
    _session, records = new_session_records(gateway, before)
    assert {"channel": 1, "signal": "TERM"} in [r["body"] for r in records if r["kind"] == "signal"]
    assert [r["body"] for r in records if r["kind"] == "exit"] == [{"channel": 1, "signal": "TERM"}]


def test_a_refused_channel_leaves_the_connection_usable(
    gateway: SshGateway, sshd: SshServer, scratch: str
) -> None:
    """Several channels on one connection (OpenSSH multiplexes them only through a
    control master, so asyncssh plays the client here)."""

    async def both() -> tuple[asyncssh.SSHCompletedProcess, asyncssh.SSHCompletedProcess]:
        async with _asyncssh_client(gateway) as conn:
            refused = await conn.run("touch denied-x", check=False, encoding=None)
            allowed = await conn.run(f"touch {scratch}/second; echo fine", encoding=None)
            return refused, allowed

    refused, allowed = asyncio.run(both())
    assert refused.exit_status == 1
    assert refused.stderr == b"hoopd: this marker may not be written\n"
    assert not sshd.target_path("denied-x").exists()
    assert allowed.exit_status == 0 and allowed.stdout == b"fine\n"
    assert sshd.target_path(f"{scratch}/second").exists()


# ------------------------------------------------------------- authentication


def test_a_wrong_token_is_refused(gateway: SshGateway, tmp_path: Path) -> None:
    started = time.monotonic()
    done = gateway.client(tmp_path / "c", token="not-a-token").ssh("true")
    assert done.returncode == 255
    assert "Permission denied" in done.err
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_the_token_as_password_or_keyboard_interactive(
    gateway: SshGateway, client: SshClient, method: str
) -> None:
    options = client.ssh_options()
    at = options.index(next(o for o in options if o.startswith("PreferredAuthentications=")))
    options[at] = f"PreferredAuthentications={method}"
    argv = ["ssh", *options, "-p", str(client.port), client.destination, "echo in"]
    assert client.run(argv).check().out == "in\n"


def test_public_keys_and_forwarding_are_refused(
    gateway: SshGateway, sshd: SshServer, client: SshClient, tmp_path: Path
) -> None:
    keyed = SshClient(
        "127.0.0.1",
        gateway.ssh_port,
        CONNECTION,
        tmp_path / "keyed",
        identity_file=sshd.client_key,
        known_hosts=[gateway.host_key_line()],
    )
    done = keyed.ssh("true")
    assert done.returncode == 255 and "Permission denied" in done.err
    # -R: `the-rest` allows everything, but only a rule naming remote-forward can.
    remote = ["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"]
    done = client.ssh("true", options=remote)
    assert done.returncode == 255 and "remote port forwarding failed" in done.err
    # -L: ssh listens locally; the gateway refuses each channel it asks for, so a
    # connection there never reaches the target (no SSH banner from its sshd).
    with (
        client.local_forward("127.0.0.1", sshd.port) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.settimeout(10)
        assert sock.recv(64) == b""


def test_six_refused_tokens_close_the_connection(gateway: SshGateway, tmp_path: Path) -> None:
    client = gateway.client(tmp_path / "c", token="still-not-a-token")
    options = [
        "NumberOfPasswordPrompts=20" if o.startswith("NumberOfPasswordPrompts=") else o
        for o in client.ssh_options()
    ]
    argv = ["ssh", *options, "-p", str(client.port), client.destination, "true"]
    done = client.run(argv)
    assert done.returncode == 255
    assert "too many authentication failures" in done.err
    assert done.err.count("Permission denied") <= 1


@pytest.mark.parametrize("user", ["nosuch", "root+" + CONNECTION, CONNECTION + "+"])
def test_an_unknown_connection_or_login_looks_like_a_wrong_token(
    gateway: SshGateway, tmp_path: Path, user: str
) -> None:
    done = gateway.client(tmp_path / "c", user=user).ssh("true")
    assert done.returncode == 255
    assert "Permission denied" in done.err


def test_the_default_login_may_be_named(
    gateway: SshGateway, sshd: SshServer, tmp_path: Path
) -> None:
    done = gateway.client(tmp_path / "c", user=f"{sshd.user}+{CONNECTION}").ssh("id -un")
    assert done.check().out == f"{sshd.user}\n"


def test_the_host_key_is_stable_across_restarts(sshd: SshServer, tmp_path: Path) -> None:
    gw = SshGateway(sshd, tmp_path / "gw")
    with gw:
        first = gw.host_key_line()
        assert host_key_path(gw.data_dir).stat().st_mode & 0o777 == 0o600
        assert "ssh-ed25519" in first
    with gw:
        assert gw.host_key_line() == first
        gw.client(tmp_path / "c").ssh("true").check()


def test_a_target_host_key_mismatch_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    gw = SshGateway(sshd, tmp_path / "gw", host_key=other)
    with gw:
        mark = sshd.log_mark()
        before = session_ids(gw)
        done = gw.client(tmp_path / "c").ssh("touch should-not-exist")
        assert done.returncode == 255
        assert "does not match the one configured for it" in done.err
        session, records = new_session_records(gw, before)
        assert session["end_reason"] == "target unavailable"
        assert not any(r["kind"] == "statement" for r in records)
    assert "Accepted publickey" not in sshd.log_text(mark)
    assert not sshd.target_path("should-not-exist").exists()


# ------------------------------------------------------------- file transfer


def test_scp_and_sftp_both_ways(
    sshd: SshServer, client: SshClient, scratch: str, tmp_path: Path
) -> None:
    payload = secrets.token_bytes(1_500_000)
    local = tmp_path / "up.bin"
    local.write_bytes(payload)
    client.upload(local, f"{scratch}/up.bin").check()  # scp over sftp
    assert sshd.read_target_file(f"{scratch}/up.bin") == payload
    client.download(f"{scratch}/up.bin", tmp_path / "down.bin").check()
    assert (tmp_path / "down.bin").read_bytes() == payload

    client.upload(local, f"{scratch}/legacy.bin", legacy=True).check()  # scp -t
    assert sshd.read_target_file(f"{scratch}/legacy.bin") == payload

    done = client.sftp_batch(
        [f"put {local} {scratch}/sftp.bin", f"get {scratch}/sftp.bin {tmp_path}/sftp-back.bin",
         f"ls {scratch}"]
    ).check()  # fmt: skip
    assert "sftp.bin" in done.out
    assert sshd.read_target_file(f"{scratch}/sftp.bin") == payload
    assert (tmp_path / "sftp-back.bin").read_bytes() == payload


def test_rsync_and_git_over_ssh(
    sshd: SshServer, client: SshClient, scratch: str, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(secrets.token_bytes(200_000))
    client.rsync([f"{tree}/"], client.remote(f"{scratch}/tree/")).check()
    assert sshd.read_target_file(f"{scratch}/tree/a.txt") == b"alpha\n"
    copied = sshd.read_target_file(f"{scratch}/tree/sub/b.bin")
    assert copied == (tree / "sub" / "b.bin").read_bytes()

    sshd.run_as_target(f"git init -q --bare {scratch}/repo.git")
    url = client.git_url(str(sshd.target_path(f"{scratch}/repo.git")))
    work = tmp_path / "work"
    client.git("clone", "-q", url, str(work)).check()
    (work / "README").write_text("through hoopd\n")
    client.git("add", "README", cwd=work).check()
    client.git("commit", "-q", "-m", "first", cwd=work).check()
    client.git("push", "-q", "origin", "HEAD:main", cwd=work).check()
    log = sshd.run_as_target(f"git --git-dir={scratch}/repo.git log --format=%s main")
    assert log.stdout == b"first\n"


def test_a_subsystem_the_target_lacks_is_refused_on_stderr(client: SshClient) -> None:
    argv = ["ssh", *client.ssh_options(), "-p", str(client.port), "-s", client.destination]
    done = client.run([*argv, "no-such-subsystem"])
    assert done.returncode == 1
    assert "hoopd: the target refused the channel" in done.err


# -------------------------------------------------------------- interactive


def test_a_shell_with_a_pty_under_tmux(gateway: SshGateway, client: SshClient) -> None:
    before = session_ids(gateway)
    # ssh runs under sh, which prints its exit status: tmux sometimes reports the pane
    # dead before it knows the status (#{pane_dead_status} stays empty).
    ssh = ["ssh", *client.ssh_options(), "-p", str(client.port), "-tt", client.destination]
    script = shlex.join(ssh) + '; echo "[ssh exited $?]"; sleep 60'
    with TmuxSession.start(["sh", "-c", script], env=client.env()) as tmux:
        tmux.type("echo hello-$((6*7))")
        tmux.wait_for(r"^hello-42$")
        tmux.type("stty size")
        tmux.wait_for(r"^30 120$")
        tmux.resize(100, 40)
        deadline = time.monotonic() + 15
        while True:  # the window change travels on its own; ask until it has arrived
            tmux.type("stty size")
            with contextlib.suppress(AssertionError):
                tmux.wait_for(r"^40 100$", timeout=1)
                break
            assert time.monotonic() < deadline, tmux.capture()
        tmux.type("sleep 30")
        time.sleep(0.3)
        tmux.send_keys("C-c")  # through the pty, as a byte: the target's shell sees SIGINT
        tmux.type("echo status-$?")
        tmux.wait_for(r"^status-130$")
        tmux.type("exit 3")
        tmux.wait_for(r"^\[ssh exited 3\]$")
    _session, records = new_session_records(gateway, before)
    opened = next(r["body"] for r in records if r["kind"] == "channel_open")
    assert opened["type"] == "shell"
    assert opened["pty"]["cols"] == 120 and opened["pty"]["rows"] == 30
    statement = next(r["body"] for r in records if r["kind"] == "statement")
    assert statement["kind"] == "shell"
    assert any(r["kind"] == "window" and r["body"]["cols"] == 100 for r in records)
    assert b"echo hello" in data_of(records, "stdin")
    assert b"hello-42" in data_of(records, "stdout")
    assert [r["body"] for r in records if r["kind"] == "exit"] == [{"channel": 1, "status": 3}]


# ------------------------------------------------------------------ lifetime


def test_revocation_ends_a_live_ssh_session(
    gateway: SshGateway, sshd: SshServer, tmp_path: Path
) -> None:
    bob = gateway.tokens[1]
    child = gateway.exchanged(bob, "--scope", f"{CONNECTION}:admin", "--ttl", "600")

    client = gateway.client(tmp_path / "c", token=child)
    before = session_ids(gateway)
    with remote_sleeper(client, sshd) as (proc, sleeper):
        session = wait_for_new_session(gateway, before)
        done = gateway.cli(
            "revoke", gateway_token_id(child), "--config", str(gateway.config_path),
            "--reason", "test",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 255
    assert "revoked" in err.decode()
    _wait_gone(sshd, sleeper)
    _session, records = new_session_records(gateway, before)
    assert any(r["kind"] == "revoked" for r in records)
    assert records[-1]["body"]["reason"] == "token revoked"
    assert session["identity"]["subject"] == "bob"


def test_a_session_ends_when_its_token_expires(gateway: SshGateway, tmp_path: Path) -> None:
    child = gateway.exchanged(gateway.tokens[1], "--scope", f"{CONNECTION}:admin", "--ttl", "3")
    before = session_ids(gateway)
    proc = _start_ssh(gateway.client(tmp_path / "c", token=child), "echo started; sleep 30")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    status, _out, err = _finish(proc)
    assert status == 255
    assert "hoopd: the token of this session expired" in err
    session, records = new_session_records(gateway, before)
    assert session["end_reason"] == "token expired"
    assert any(r["kind"] == "expired" for r in records)


def _wait_gone(sshd: SshServer, command_line: str) -> None:
    """Until no process of the target user runs exactly ``command_line``."""
    deadline = time.monotonic() + 10
    while sshd.run_as_target(f"pgrep -f '^{command_line}$'", check=False).returncode == 0:
        assert time.monotonic() < deadline, f"{command_line!r} outlived its session"
        time.sleep(0.1)


@contextlib.contextmanager
def remote_sleeper(
    client: SshClient, sshd: SshServer
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``ssh HOST sleep 600.NNNNNN`` in the background (a command line found nowhere
    else), once the sleep runs on the target; on exit the ssh process is killed if
    it still runs, and so is the sleep on the target (sshd leaves a command without
    a pty running when its connection merely drops). Yields the process and the
    command line."""
    sleeper = f"sleep 600.{secrets.randbelow(10**6):06d}"
    proc = _start_ssh(client, sleeper)
    try:
        deadline = time.monotonic() + 10
        while sshd.run_as_target(f"pgrep -f '^{sleeper}$'", check=False).returncode != 0:
            assert proc.poll() is None, "ssh ended before the command started"
            assert time.monotonic() < deadline, "the command never started on the target"
            time.sleep(0.1)
        yield proc, sleeper
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sshd.run_as_target(f"pkill -f '^{sleeper}$'", check=False)


def _start_ssh(client: SshClient, command: str) -> subprocess.Popen[bytes]:
    """``ssh`` running in the background (its stdout and stderr piped)."""
    return client.background(
        ["ssh", *client.ssh_options(), "-p", str(client.port), client.destination, command]
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float = 20) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _read_line_with(stream: Any, needle: str, timeout: float = 15) -> str:
    """Read ``stream`` line by line until one contains ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline().decode(errors="replace")
        if needle in line:
            return str(line)
        assert line, f"the stream ended before a line with {needle!r}"
    raise AssertionError(f"no line with {needle!r} in time")


def test_an_exec_waits_for_approval_then_runs(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str
) -> None:
    before = session_ids(gateway)
    proc = _start_ssh(client, f"approve-me now; touch {scratch}/approved; echo done")
    try:
        line = _read_line_with(proc.stderr, "needs approval")
        request_id = re.search(r"request (\S+?),", line)
        assert request_id is not None, line
        assert not sshd.target_path(f"{scratch}/approved").exists()  # waiting: nothing ran
        carol = gateway.tokens[2]
        done = gateway.cli(
            "approve", request_id.group(1), "--config", str(gateway.config_path),
            "--reason", "ticket 7", extra_env={"HOOPD_TOKEN": carol.value},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        status, out, err = _finish(proc)
    assert status == 0, err
    assert out == "done\n"
    assert sshd.target_path(f"{scratch}/approved").exists()
    _session, records = new_session_records(gateway, before)
    statement = next(r["body"] for r in records if r["kind"] == "statement")
    assert statement["verdict"]["action"] == "approve"
    assert statement["approval"]["status"] == "approved"


def test_a_target_that_dies_ends_only_its_session(
    gateway: SshGateway, sshd: SshServer, client: SshClient, tmp_path: Path
) -> None:
    from tests.support.sshserver import _descendants

    before = session_ids(gateway)
    proc = _start_ssh(client, "echo started; sleep 30")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        for pid in _descendants(sshd.pid):  # this session's sshd processes, not the listener
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        status, _out, err = _finish(proc)
    assert status == 255
    assert re.search(r"hoopd: the target closed the (connection|channel)", err), err
    session, _records = new_session_records(gateway, before)
    assert session["end_reason"] == "target disconnected"
    assert gateway.alive()
    assert client.ssh("echo still-serving").check().out == "still-serving\n"


def test_malformed_client_input_ends_only_that_connection(
    gateway: SshGateway, client: SshClient
) -> None:
    proc = _start_ssh(client, "sleep 1; echo survived")
    try:
        for garbage in (
            b"\x00" * 64,
            b"SSH-2.0-x\r\n" + bytes(range(256)) * 8,
            b"GET / HTTP/1.1\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", gateway.ssh_port), timeout=10) as sock:
                sock.sendall(garbage)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(10)
                with contextlib.suppress(ConnectionResetError):
                    while sock.recv(4096):
                        pass  # until the gateway closes it
    finally:
        status, out, err = _finish(proc)
    assert (status, out) == (0, "survived\n"), err
    assert gateway.alive()


def test_gateway_shutdown_ends_sessions_cleanly(sshd: SshServer, tmp_path: Path) -> None:
    gw = SshGateway(sshd, tmp_path / "gw")
    gw.start()
    try:
        client = gw.client(tmp_path / "c")
        before = session_ids(gw)
        proc = _start_ssh(client, "echo started; sleep 31")
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        assert gw.stop() == 0
        status, _out, err = _finish(proc)
    finally:
        gw.stop()
    assert status == 255
    assert "hoopd: the gateway is shutting down" in err
    session, _records = new_session_records(gw, before)
    assert session["end_reason"] == "gateway shutdown"
    assert gw.audit_verify().returncode == 0
    _wait_gone(sshd, "sleep 31")


def test_a_password_target_verified_through_known_hosts(tmp_path: Path) -> None:
    with running_sshd(tmp_path / "sshd", password_auth=True) as target:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(target.known_hosts_line + "\n")
        gw = SshGateway(target, tmp_path / "gw", known_hosts=known_hosts, password=True)
        with gw:
            mark = target.log_mark()
            done = gw.client(tmp_path / "c").ssh("id -un").check()
            assert done.out == f"{target.user}\n"
            target.wait_for_log(rf"Accepted password for {target.user}", since=mark)
            # The same file without the target's line: refused before logging in.
            gw.stop()
            known_hosts.write_text("")
            gw.start()
            mark = target.log_mark()
            done = gw.client(tmp_path / "c2").ssh("id -un")
            assert done.returncode == 255 and "does not match" in done.err
            assert "Accepted" not in target.log_text(mark)


# ----------------------------------------------------------- recording, flow


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_slow_reader_slows_the_target_instead_of_filling_the_gateway(
    gateway: SshGateway, client: SshClient
) -> None:
    """Flow control end to end: while the client reads nothing, the gateway holds
    about an SSH window per leg, not the 64 MiB the target wants to send."""
    client.ssh("head -c 16000000 /dev/zero", options=["-o", "LogLevel=ERROR"]).check()
    before = _rss_bytes(gateway.pid)  # after a warm-up transfer of the same kind
    proc = _start_ssh(client, "head -c 67108864 /dev/zero")
    try:
        assert proc.stdout is not None
        assert len(proc.stdout.read(1024)) == 1024
        time.sleep(2.0)  # the client reads nothing meanwhile; the target could send it all
        grown = _rss_bytes(gateway.pid) - before
        print(f"gateway RSS grew by {grown / 2**20:.1f} MiB while the client was stalled")
        assert grown < 24 * 2**20
        rest = proc.stdout.read()
    finally:
        status, _out, err = _finish(proc)
    assert status == 0, err
    assert 1024 + len(rest) == 67108864


def test_output_that_cannot_be_recorded_is_not_forwarded(sshd: SshServer, tmp_path: Path) -> None:
    """The journal cannot grow past a file size limit (RLIMIT_FSIZE): the client sees
    only output that was recorded, then the session ends with a message."""
    with SshGateway(sshd, tmp_path / "gw") as gw:  # makes the data directory
        pass
    limit = max(p.stat().st_size for p in gw.data_files()) + 256 * 1024

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    capped = SshGateway(sshd, tmp_path / "gw", preexec_fn=cap_file_size)
    with capped:
        before = session_ids(capped)
        done = capped.client(tmp_path / "c").ssh("head -c 3000000 /dev/urandom | base64 -w 76")
        session = wait_for_new_session(capped, before)
        records = capped.replay(session["id"])
    assert done.returncode == 255
    assert "hoopd: session recording is unavailable" in done.err
    recorded = data_of(records, "stdout")
    assert 0 < len(recorded) < 3_000_000
    # Nothing unrecorded reached the client. (It may see less than was recorded: the
    # disconnect drops what its SSH window had not yet let through.)
    assert recorded.startswith(done.stdout)
