"""The SSH test support against a real sshd directly, without the gateway.

Each test looks at the target's side too: files read straight from the target
user's home, commands run as that user without sshd, or sshd's own log.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.echo import EchoServer
from tests.support.sshclient import SshClient
from tests.support.sshserver import SshServer, running_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if shutil.which("ssh") is None or not Path("/usr/sbin/sshd").exists():
        pytest.fail("openssh-server and openssh-client are required (packaging/system-deps.sh)")
    with running_sshd(tmp_path_factory.mktemp("sshd"), password_auth=True) as server:
        yield server


@pytest.fixture
def key_client(sshd: SshServer, tmp_path: Path) -> SshClient:
    return SshClient(
        sshd.host,
        sshd.port,
        sshd.user,
        tmp_path / "client",
        identity_file=sshd.client_key,
        known_hosts=[sshd.known_hosts_line],
    )


@pytest.fixture
def password_client(sshd: SshServer, tmp_path: Path) -> SshClient:
    return SshClient(
        sshd.host,
        sshd.port,
        sshd.user,
        tmp_path / "client",
        password=sshd.password,
        known_hosts=[sshd.known_hosts_line],
    )


@pytest.fixture
def scratch(sshd: SshServer) -> Iterator[str]:
    """A fresh directory name under the target's home, removed afterwards."""
    name = "t-" + secrets.token_hex(6)
    sshd.run_as_target(f"mkdir {name}")
    yield name
    sshd.remove_target_path(name)


def test_key_auth_exec_returns_output_and_exit_status(
    sshd: SshServer, key_client: SshClient
) -> None:
    mark = sshd.log_mark()
    done = key_client.ssh("id -un; echo to-stderr >&2; exit 3")
    assert done.returncode == 3
    assert done.out == f"{sshd.user}\n"
    assert "to-stderr" in done.err
    sshd.wait_for_log(rf"Accepted publickey for {sshd.user} from 127\.0\.0\.1", since=mark)


def test_exec_passes_stdin_and_binary_output(key_client: SshClient) -> None:
    data = bytes(range(256)) * 64
    done = key_client.ssh("cat", input=data).check()
    assert done.stdout == data


def test_password_auth_through_askpass(sshd: SshServer, password_client: SshClient) -> None:
    mark = sshd.log_mark()
    done = password_client.ssh("echo pw-ok").check()
    assert done.out == "pw-ok\n"
    assert sshd.password not in done.out + done.err
    sshd.wait_for_log(rf"Accepted password for {sshd.user}", since=mark)
    assert sshd.password not in sshd.log_text()


def test_wrong_password_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    client = SshClient(
        sshd.host,
        sshd.port,
        sshd.user,
        tmp_path / "c",
        password="not-the-password",
        known_hosts=[sshd.known_hosts_line],
    )
    done = client.ssh("true")
    assert done.returncode == 255
    assert "Permission denied" in done.err


@pytest.mark.parametrize("legacy", [False, True], ids=["sftp-scp", "scp-O"])
def test_scp_both_ways(
    sshd: SshServer, key_client: SshClient, scratch: str, tmp_path: Path, legacy: bool
) -> None:
    payload = secrets.token_bytes(300_000)
    local = tmp_path / "up.bin"
    local.write_bytes(payload)
    key_client.upload(local, f"{scratch}/up.bin", legacy=legacy).check()
    assert sshd.read_target_file(f"{scratch}/up.bin") == payload

    sshd.write_target_file(f"{scratch}/down.bin", payload[::-1])
    back = tmp_path / "down.bin"
    key_client.download(f"{scratch}/down.bin", back, legacy=legacy).check()
    assert back.read_bytes() == payload[::-1]


def test_scp_modes_differ_on_the_target(
    sshd: SshServer, key_client: SshClient, scratch: str, tmp_path: Path
) -> None:
    local = tmp_path / "f.txt"
    local.write_text("x")
    mark = sshd.log_mark()
    key_client.upload(local, f"{scratch}/a.txt").check()
    sshd.wait_for_log(r"Starting session: subsystem 'sftp'", since=mark)
    mark = sshd.log_mark()
    key_client.upload(local, f"{scratch}/b.txt", legacy=True).check()
    sshd.wait_for_log(r"Starting session: command", since=mark)
    assert "subsystem 'sftp'" not in sshd.log_text(mark)


def test_sftp_batch_put_and_get_with_password(
    sshd: SshServer, password_client: SshClient, scratch: str, tmp_path: Path
) -> None:
    payload = secrets.token_bytes(100_000)
    local = tmp_path / "put.bin"
    local.write_bytes(payload)
    sshd.write_target_file(f"{scratch}/get.bin", b"from the target\n")
    got = tmp_path / "got.bin"
    done = password_client.sftp_batch(
        [f"put {local} {scratch}/put.bin", f"get {scratch}/get.bin {got}", f"ls {scratch}"]
    ).check()
    assert sshd.read_target_file(f"{scratch}/put.bin") == payload
    assert got.read_bytes() == b"from the target\n"
    assert "put.bin" in done.out


def test_sftp_batch_stops_at_a_failing_command(key_client: SshClient, scratch: str) -> None:
    done = key_client.sftp_batch([f"get {scratch}/missing /dev/null", "ls"])
    assert done.returncode != 0


def test_rsync_both_ways(
    sshd: SshServer, key_client: SshClient, scratch: str, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.bin").write_bytes(secrets.token_bytes(50_000))
    key_client.rsync([f"{tree}/"], key_client.remote(f"{scratch}/tree/")).check()
    assert sshd.read_target_file(f"{scratch}/tree/a.txt") == b"alpha\n"
    assert sshd.read_target_file(f"{scratch}/tree/sub/b.bin") == (tree / "sub/b.bin").read_bytes()

    back = tmp_path / "back"
    key_client.rsync([key_client.remote(f"{scratch}/tree/")], f"{back}/").check()
    assert (back / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()


def test_git_clone_and_push(
    sshd: SshServer, password_client: SshClient, scratch: str, tmp_path: Path
) -> None:
    sshd.run_as_target(
        f"git init -q --bare -b main {scratch}/repo.git && "
        f"git init -q -b main {scratch}/seed && cd {scratch}/seed && "
        "echo one > README && git add README && "
        "git -c user.name=t -c user.email=t@example.test commit -qm one && "
        f"git push -q ../repo.git main"
    )
    url = password_client.git_url(f"{sshd.home}/{scratch}/repo.git")
    work = tmp_path / "work"
    password_client.git("clone", "-q", url, str(work)).check()
    assert (work / "README").read_text() == "one\n"

    (work / "NEW").write_text("pushed over ssh\n")
    password_client.git("add", "NEW", cwd=work).check()
    password_client.git("commit", "-qm", "two", cwd=work).check()
    password_client.git("push", "-q", "origin", "main", cwd=work).check()
    shown = sshd.run_as_target(f"git --git-dir={scratch}/repo.git show main:NEW")
    assert shown.stdout == b"pushed over ssh\n"


def test_local_forward_reaches_a_loopback_echo_server(
    sshd: SshServer, key_client: SshClient
) -> None:
    echo = EchoServer()
    try:
        with (
            key_client.local_forward("127.0.0.1", echo.port) as port,
            socket.create_connection(("127.0.0.1", port), timeout=10) as conn,
        ):
            conn.settimeout(10)
            message = secrets.token_bytes(10_000)
            conn.sendall(message)
            received = b""
            while len(received) < len(message):
                chunk = conn.recv(65536)
                assert chunk, "forward closed early"
                received += chunk
            assert received == message
        assert echo.peers, "the echo server never saw the forwarded connection"
        assert all(host == "127.0.0.1" for host, _ in echo.peers)
    finally:
        echo.close()


def test_tmux_interactive_session_and_resize(password_client: SshClient) -> None:
    # The password still goes through askpass although ssh now has a terminal.
    with password_client.interactive(width=120, height=30) as term:
        term.type("echo hi-$((40+2))")
        term.wait_for(r"^hi-42$")
        term.type("stty size")
        term.wait_for(r"^30 120$")
        term.resize(100, 40)
        term.type("stty size")
        term.wait_for(r"^40 100$")
        term.type("exit 7")
        assert term.wait_exit() == 7


def test_wrong_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
        check=True,
        capture_output=True,
    )
    wrong = (other.with_suffix(".pub")).read_text().split()
    client = SshClient(
        sshd.host,
        sshd.port,
        sshd.user,
        tmp_path / "c",
        identity_file=sshd.client_key,
        known_hosts=[f"[{sshd.host}]:{sshd.port} {wrong[0]} {wrong[1]}"],
    )
    done = client.ssh("echo should-not-run")
    assert done.returncode == 255
    assert "should-not-run" not in done.out
    assert "HOST IDENTIFICATION HAS CHANGED" in done.err


def test_unknown_host_is_refused_unless_accept_new(sshd: SshServer, tmp_path: Path) -> None:
    strict = SshClient(
        sshd.host, sshd.port, sshd.user, tmp_path / "a", identity_file=sshd.client_key
    )
    done = strict.ssh("true")
    assert done.returncode == 255
    assert "Host key verification failed" in done.err

    first_use = SshClient(
        sshd.host,
        sshd.port,
        sshd.user,
        tmp_path / "b",
        identity_file=sshd.client_key,
        strict_host_key_checking="accept-new",
    )
    first_use.ssh("true").check()
    assert sshd.host_key in first_use.known_hosts_text()
