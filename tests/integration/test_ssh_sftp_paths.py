"""SFTP paths are judged where the target resolves them: ``..``, symbolic links and
relative paths cannot walk around a rule on paths. Real ``sftp -b`` and asyncssh's
SFTP client -> hoopd -> a real sshd, whose internal-sftp logs every operation that
reaches it (the target's side of each refusal).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    _asyncssh_client,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.gateway import Token, session_ids
from tests.support.sshclient import SshClient
from tests.support.sshserver import SshServer

POLICY = """
defaults:
  - unmatched: deny
rules:
  - name: secrets-stay
    match: {kinds: [sftp-read, sftp-write, sftp-list], paths: ["/home/*/secret*"]}
    action: deny
    message: secrets stay on the host
  - name: sftp
    match: {kinds: [subsystem, sftp-read, sftp-write, sftp-list, sftp-remove, sftp-rename,
                    sftp-mkdir, sftp-setstat]}
    action: allow
"""


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    tokens = [Token("alice", ("dev",))]
    with running_ssh_gateway(sshd, tmp_path_factory.mktemp("gw"), POLICY, tokens) as gw:
        yield gw


@pytest.fixture
def secret(sshd: SshServer) -> Iterator[str]:
    """A file under ``~/secret-NAME`` (denied) and a directory ``~/open-NAME`` (allowed)."""
    name = secrets.token_hex(6)
    sshd.run_as_target(f"mkdir secret-{name} open-{name}")
    sshd.write_target_file(f"secret-{name}/x", b"the secret\n")
    yield name
    sshd.remove_target_path(f"secret-{name}")
    sshd.remove_target_path(f"open-{name}")


def _denied(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r["body"]
        for r in records
        if r["kind"] == "statement" and r["body"]["verdict"]["action"] == "deny"
    ]


def test_dot_dot_and_a_symbolic_link_do_not_walk_around_a_rule(
    gateway: SshGateway, sshd: SshServer, secret: str, tmp_path: Path
) -> None:
    home = str(sshd.home)
    sshd.run_as_target(f"ln -s {home}/secret-{secret} open-{secret}/door")
    client: SshClient = gateway.client(tmp_path / "client")
    (tmp_path / "upload").write_bytes(b"planted\n")
    before = session_ids(gateway)
    mark = sshd.sftp_log_mark()
    done = client.sftp_batch(
        [
            f"-get /tmp/../{home}/secret-{secret}/x {tmp_path}/a",
            f"-get open-{secret}/../secret-{secret}/x {tmp_path}/b",
            f"-get open-{secret}/door/x {tmp_path}/c",
            f"-put {tmp_path}/upload open-{secret}/door/new",
            f"ls open-{secret}",
        ]
    )
    assert done.returncode == 0, done.err
    assert done.err.count("Permission denied") >= 4, done.err
    assert not any((tmp_path / n).exists() for n in "abc")
    assert not sshd.target_path(f"secret-{secret}/new").exists()

    _session, records = new_session_records(gateway, before)
    denied = _denied(records)
    assert [d["paths"] for d in denied] == [[f"{home}/secret-{secret}/x"]] * 3 + [
        [f"{home}/secret-{secret}/new"]
    ]
    assert all(d["verdict"]["rule"] == "secrets-stay" for d in denied)
    # What the client wrote is still what the record's text says.
    assert f"open-{secret}/door/x" in denied[2]["text"]
    # The target's side: the listing went through, no open of the secret did.
    opened = [line for line in sshd.sftp_operations(mark) if "open" in line]
    assert any(f'opendir "{home}/open-{secret}' in line for line in opened), opened
    assert not [line for line in opened if "secret-" in line or "/door/" in line], opened


def test_a_relative_path_is_judged_from_the_login_home(
    gateway: SshGateway, sshd: SshServer, secret: str
) -> None:
    home = str(sshd.home)

    async def attempts() -> tuple[list[str], bytes]:
        outcomes = []
        async with _asyncssh_client(gateway) as conn, conn.start_sftp_client() as sftp:
            for path in (f"secret-{secret}/x", f"./open-{secret}/../secret-{secret}/x"):
                try:
                    async with sftp.open(path, "rb") as f:
                        await f.read()
                    outcomes.append("read")
                except asyncssh.SFTPError as exc:
                    outcomes.append(f"{exc.code}: {exc.reason}")
            await sftp.mkdir(f"open-{secret}/made")
            return outcomes, await sftp.realpath(b".")

    before = session_ids(gateway)
    outcomes, realpath = asyncio.run(attempts())
    denied = f"{asyncssh.FX_PERMISSION_DENIED}: hoopd: secrets stay on the host"
    assert outcomes == [denied, denied]
    assert realpath == home.encode()  # the client's own lookups still reach the target
    assert sshd.target_path(f"open-{secret}/made").is_dir()

    _session, records = new_session_records(gateway, before)
    made = [
        r["body"] for r in records if r["kind"] == "statement" and r["body"]["kind"] == "sftp-mkdir"
    ]
    assert made[0]["paths"] == [f"{home}/open-{secret}/made"]
    assert [d["paths"] for d in _denied(records)] == [[f"{home}/secret-{secret}/x"]] * 2
