"""SFTP operations and local forwarding through the SSH engine, end to end: real
``sftp -b``, ``scp`` and ``ssh -L``/``-W`` -> hoopd -> a real sshd.

Each test checks the target's side (files there, what a loopback echo server saw)
and what hoopd recorded (``hoopd replay --json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    _asyncssh_client,
    _finish,
    _read_line_with,
    data_of,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.echo import EchoServer
from tests.support.gateway import Token, session_ids
from tests.support.ports import free_port
from tests.support.sshclient import SshClient
from tests.support.sshserver import SshServer

SFTP_KINDS = (
    "subsystem, sftp-read, sftp-write, sftp-list, sftp-remove, sftp-rename, sftp-mkdir,"
    " sftp-setstat"
)


CLOSED_PORT = free_port()
"""Allowed by the policy, but nothing listens there."""


@pytest.fixture(scope="module")
def echoes() -> Iterator[tuple[EchoServer, EchoServer]]:
    """(allowed, forbidden) destinations."""
    allowed, forbidden = EchoServer(), EchoServer()
    try:
        yield allowed, forbidden
    finally:
        allowed.close()
        forbidden.close()


@pytest.fixture(scope="module")
def gateway(
    sshd: SshServer,
    echoes: tuple[EchoServer, EchoServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SshGateway]:
    policy = f"""
defaults:
  - unmatched: deny
rules:
  - name: secrets-stay
    match: {{kinds: [sftp-read], paths: ["/home/*/secret/*"]}}
    action: deny
    message: secrets stay on the host
  - name: keep-files-stay
    match: {{kinds: [sftp-remove], paths: ["*/keep-*"]}}
    action: deny
    message: keep files stay
  - name: approved-directories
    match: {{kinds: [sftp-mkdir], paths: ["*/needs-approval*"]}}
    action: approve
    approvers: [ops]
    deadline: 60s
  - name: sftp
    match: {{kinds: [{SFTP_KINDS}]}}
    action: allow
  - name: the-echo-server
    match:
      kinds: [forward]
      destination: ["127.0.0.1:{echoes[0].port}", "127.0.0.1:{CLOSED_PORT}"]
    action: allow
"""
    tokens = [Token("alice", ("dev",)), Token("carol", ("ops",))]
    with running_ssh_gateway(sshd, tmp_path_factory.mktemp("gw"), policy, tokens) as gw:
        yield gw


@pytest.fixture
def client(gateway: SshGateway, tmp_path: Path) -> SshClient:
    return gateway.client(tmp_path / "client")


@pytest.fixture
def scratch(sshd: SshServer) -> Iterator[str]:
    name = "t-" + secrets.token_hex(6)
    sshd.run_as_target(f"mkdir {name} {name}/secret {name}/open")
    yield name
    sshd.remove_target_path(name)


def statements(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["kind"] == "statement"]


# ----------------------------------------------------------------------- SFTP


def test_a_denied_read_is_refused_and_the_session_goes_on(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str, tmp_path: Path
) -> None:
    sshd.write_target_file(f"{scratch}/secret/x", b"the secret\n")
    sshd.write_target_file(f"{scratch}/open/y", b"not secret\n")
    before = session_ids(gateway)
    mark = sshd.sftp_log_mark()
    done = client.sftp_batch(
        [f"cd {scratch}", f"-get secret/x {tmp_path}/x", f"get open/y {tmp_path}/y"]
    ).check()
    assert "Permission denied" in done.err
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "y").read_bytes() == b"not secret\n"

    _session, records = new_session_records(gateway, before)
    home = str(sshd.home)
    ops = statements(records)
    assert ops[0]["kind"] == "subsystem" and ops[0]["text"] == "sftp"
    denied = next(s for s in ops if s["verdict"]["action"] == "deny")
    assert denied["kind"] == "sftp-read"
    assert denied["paths"] == [f"{home}/{scratch}/secret/x"]
    assert denied["verdict"]["rule"] == "secrets-stay"
    allowed = [s for s in ops if s["kind"] == "sftp-read" and s["verdict"]["action"] == "allow"]
    assert [s["paths"] for s in allowed] == [[f"{home}/{scratch}/open/y"]]
    results = {r["body"]["command"]: r["body"] for r in records if r["kind"] == "result"}
    assert results[allowed[0]["command"]]["tag"] == "handle"
    assert denied["command"] not in results  # never reached the target
    opened = [line for line in sshd.sftp_operations(mark) if line.startswith("open ")]
    assert [line.split('"')[1] for line in opened] == [f"{home}/{scratch}/open/y"], opened


def test_operations_are_events_and_a_denied_rm_leaves_the_file(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str
) -> None:
    sshd.write_target_file(f"{scratch}/keep-me", b"kept\n")
    sshd.write_target_file(f"{scratch}/a", b"a\n")
    before = session_ids(gateway)
    done = client.sftp_batch(
        [f"cd {scratch}", "-rm keep-me", "rename a b", "mkdir d", "chmod 600 b", "rm d/../b"]
    )
    assert done.returncode == 0, done.err
    assert sshd.read_target_file(f"{scratch}/keep-me") == b"kept\n"
    assert sshd.target_path(f"{scratch}/d").is_dir()
    assert not sshd.target_path(f"{scratch}/a").exists()
    assert not sshd.target_path(f"{scratch}/b").exists()

    _session, records = new_session_records(gateway, before)
    base = f"{sshd.home}/{scratch}"
    ops = [(s["kind"], s.get("paths"), s["verdict"]["action"]) for s in statements(records)]
    assert ops == [
        ("subsystem", None, "allow"),
        ("sftp-remove", [f"{base}/keep-me"], "deny"),
        ("sftp-rename", [f"{base}/a", f"{base}/b"], "allow"),
        ("sftp-mkdir", [f"{base}/d"], "allow"),
        ("sftp-setstat", [f"{base}/b"], "allow"),
        ("sftp-remove", [f"{base}/b"], "allow"),  # d/../b, resolved by the target
    ], ops
    numbers = [s["command"] for s in statements(records)]
    assert numbers == sorted(numbers)
    results = [r["body"] for r in records if r["kind"] == "result"]
    assert [r.get("tag") for r in results] == ["ok"] * 4


def test_an_scp_upload_is_an_sftp_write(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str, tmp_path: Path
) -> None:
    payload = secrets.token_bytes(600_000)
    local = tmp_path / "up.bin"
    local.write_bytes(payload)
    before = session_ids(gateway)
    client.upload(local, f"{scratch}/up.bin").check()  # scp in its default (sftp) mode
    assert sshd.read_target_file(f"{scratch}/up.bin") == payload
    _session, records = new_session_records(gateway, before)
    writes = [s for s in statements(records) if s["kind"] == "sftp-write"]
    assert len(writes) == 1 and writes[0]["paths"][0].endswith(f"{scratch}/up.bin"), writes
    assert writes[0]["verdict"]["action"] == "allow"


def test_an_operation_waits_for_approval_then_runs(
    gateway: SshGateway, sshd: SshServer, client: SshClient, scratch: str, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.write_text(f"mkdir {scratch}/needs-approval\n")
    argv = ["sftp", *client.ssh_options(), "-P", str(client.port), "-b", str(batch)]
    proc = client.background([*argv, client.destination])
    try:
        assert proc.stderr is not None
        line = _read_line_with(proc.stderr, "needs approval")
        request_id = re.search(r"request (\S+?),", line)
        assert request_id is not None, line
        assert not sshd.target_path(f"{scratch}/needs-approval").exists()
        done = gateway.cli(
            "approve", request_id.group(1), "--config", str(gateway.config_path),
            "--reason", "ticket 8", extra_env={"HOOPD_TOKEN": gateway.tokens[1].value},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        status, _out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, err
    assert sshd.target_path(f"{scratch}/needs-approval").is_dir()


def test_a_policy_can_forbid_sftp_entirely(sshd: SshServer, scratch: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "rules.yaml").write_text(
        "defaults:\n  - unmatched: allow\nrules:\n"
        "  - name: no-sftp\n    match: {kinds: [subsystem]}\n    action: deny\n"
        "    message: no file transfer here\n"
    )
    gw = SshGateway(sshd, tmp_path / "gw", policy_dir=policy)
    with gw:
        done = gw.client(tmp_path / "c").sftp_batch([f"ls {scratch}"])
    assert done.returncode != 0
    assert "hoopd: no file transfer here" in done.err


# ----------------------------------------------------------------- forwarding


def _echo_through(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_local_forward_to_an_allowed_destination_works(
    gateway: SshGateway, client: SshClient, echoes: tuple[EchoServer, EchoServer]
) -> None:
    allowed = echoes[0]
    data = secrets.token_bytes(300_000)
    before = session_ids(gateway)
    with client.local_forward("127.0.0.1", allowed.port) as port:
        assert _echo_through(port, data) == data
    _session, records = new_session_records(gateway, before)
    destination = f"127.0.0.1:{allowed.port}"
    # Each connection to the local port is a forward of its own (local_forward's
    # readiness probe is one too).
    forwards = statements(records)
    assert {(s["kind"], s["destination"], s["verdict"]["action"]) for s in forwards} == {
        ("forward", destination, "allow")
    }
    opened = [r["body"] for r in records if r["kind"] == "channel_open"]
    assert {(o["type"], o["destination"]) for o in opened} == {("forward", destination)}
    closed = [r["body"] for r in records if r["kind"] == "channel_close"]
    [carried] = [c for c in closed if c["to_target"]]
    assert (carried["to_target"], carried["to_client"]) == (len(data), len(data))
    assert data_of(records, "stdin", carried["channel"]) == data
    assert data_of(records, "stdout", carried["channel"]) == data


def test_a_forward_outside_the_policy_is_refused(
    gateway: SshGateway, client: SshClient, echoes: tuple[EchoServer, EchoServer]
) -> None:
    forbidden = echoes[1]
    before = session_ids(gateway)
    with (
        client.local_forward("127.0.0.1", forbidden.port) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        # ssh closes the local connection once the gateway refuses its channel
        # (with a reset if it had unread data).
        sock.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(64) == b""
    _session, records = new_session_records(gateway, before)
    forwards = statements(records)
    assert forwards and all(
        (s["destination"], s["verdict"]["action"]) == (f"127.0.0.1:{forbidden.port}", "deny")
        for s in forwards
    )
    # ssh -W opens the same kind of channel and says why it failed.
    done = client.ssh(options=["-W", f"127.0.0.1:{forbidden.port}"], input=b"")
    assert done.returncode == 255
    assert "open failed: administratively prohibited: hoopd: " in done.err, done.err
    assert forbidden.connections == 0
    # The allowed one through -W too, for good measure.
    done = client.ssh(options=["-W", f"127.0.0.1:{echoes[0].port}"], input=b"ping\n")
    assert done.check().stdout == b"ping\n"


def test_a_destination_the_target_cannot_reach_fails_the_open(
    gateway: SshGateway, client: SshClient
) -> None:
    done = client.ssh(options=["-W", f"127.0.0.1:{CLOSED_PORT}"], input=b"")
    assert done.returncode == 255
    assert "open failed: connect failed: hoopd: the target could not open" in done.err, done.err


def test_remote_forwarding_is_refused_without_a_rule_naming_it(client: SshClient) -> None:
    # This policy allows forwards by destination, but no rule names remote-forward
    # (tests/integration/test_ssh_agent_remote_x11.py has it allowed).
    remote = ["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"]
    done = client.ssh("true", options=remote)
    assert done.returncode == 255 and "remote port forwarding failed" in done.err


def test_a_malformed_sftp_packet_ends_only_its_channel(gateway: SshGateway) -> None:
    async def garbage_then_sftp() -> tuple[bytes, bytes]:
        async with _asyncssh_client(gateway) as conn:
            broken = await conn.create_process(subsystem="sftp", encoding=None)
            broken.stdin.write(b"\xff\xff\xff\xff" + b"x" * 16)  # an impossible length
            said = await asyncio.wait_for(broken.stderr.read(), 15)
            await asyncio.wait_for(broken.wait_closed(), 15)
            # The connection still serves a well-behaved SFTP channel.
            sftp = await conn.create_process(subsystem="sftp", encoding=None)
            sftp.stdin.write(struct.pack("!IBI", 5, 1, 3))  # INIT, version 3
            version = await asyncio.wait_for(sftp.stdout.read(5), 15)
            sftp.close()
            return said, version

    said, version = asyncio.run(garbage_then_sftp())
    assert b"hoopd: malformed SFTP packet from the client" in said
    assert version[4] == 2  # VERSION
    assert gateway.alive()


def test_an_unknown_extension_is_answered_by_the_gateway(gateway: SshGateway) -> None:
    def packet(kind: int, body: bytes) -> bytes:
        return struct.pack("!IB", len(body) + 1, kind) + body

    name = b"make-coffee@example.com"
    request = struct.pack("!I", 77) + struct.pack("!I", len(name)) + name

    async def ask() -> bytes:
        async with _asyncssh_client(gateway) as conn:
            sftp = await conn.create_process(subsystem="sftp", encoding=None)
            sftp.stdin.write(packet(1, struct.pack("!I", 3)))  # INIT
            (length,) = struct.unpack("!I", await sftp.stdout.readexactly(4))
            await sftp.stdout.readexactly(length)  # VERSION
            sftp.stdin.write(packet(200, request))  # EXTENDED
            (length,) = struct.unpack("!I", await sftp.stdout.readexactly(4))
            answer: bytes = await asyncio.wait_for(sftp.stdout.readexactly(length), 15)
            sftp.close()
            return answer

    answer = asyncio.run(ask())
    kind, request_id, code = struct.unpack_from("!BII", answer)
    assert (kind, request_id, code) == (101, 77, 8)  # STATUS, OP_UNSUPPORTED
    assert b"hoopd: unsupported extension" in answer
