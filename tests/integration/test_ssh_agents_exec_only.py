"""A policy can leave agents exec only: an interactive shell is refused to any token
exchanged once or more (chain depth >= 1), while the person who delegated keeps theirs.
Real ssh -> hoopd -> a real sshd; each refusal is checked on the target's side.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh_engine import (
    CONNECTION,
    SshGateway,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.gateway import Token, session_ids
from tests.support.sshserver import SshServer

POLICY = """
defaults:
  - unmatched: allow
rules:
  - name: agents-run-commands-not-shells
    match:
      identity: {depth: ">= 1"}
      kinds: [shell]
    action: deny
    message: delegated tokens may run commands, not interactive shells
"""


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    tokens = [Token("alice", ("dev",))]
    with running_ssh_gateway(sshd, tmp_path_factory.mktemp("gw"), POLICY, tokens) as gw:
        yield gw


def test_a_delegated_token_gets_exec_but_not_a_shell(
    gateway: SshGateway, sshd: SshServer, tmp_path: Path
) -> None:
    alice = gateway.tokens[0]
    agent = gateway.exchanged(
        alice, "--scope", f"{CONNECTION}:admin", "--ttl", "600", "--actor", "deploy-agent"
    )
    marker = f"shell-ran-{secrets.token_hex(4)}"
    typed = f"touch {marker}-$USER; echo typed\nexit\n".encode()

    mine = gateway.client(tmp_path / "alice").ssh(None, input=typed, options=["-T"])
    assert mine.returncode == 0, mine.err
    assert "typed" in mine.out
    assert sshd.target_path(f"{marker}-{sshd.user}").exists()
    sshd.remove_target_path(f"{marker}-{sshd.user}")

    agent_client = gateway.client(tmp_path / "agent", token=agent)
    before = session_ids(gateway)
    refused = agent_client.ssh(None, input=typed, options=["-T"])
    assert refused.returncode == 1
    assert "hoopd: delegated tokens may run commands, not interactive shells" in refused.err
    assert "typed" not in refused.out
    assert not sshd.target_path(f"{marker}-{sshd.user}").exists()  # nothing ran there
    _session, records = new_session_records(gateway, before)
    [shell] = [r["body"] for r in records if r["kind"] == "statement"]
    assert shell["kind"] == "shell"
    assert shell["verdict"]["rule"] == "agents-run-commands-not-shells"

    ran = agent_client.ssh(f"echo $((6 * 7)) > {marker}-exec; cat {marker}-exec")
    assert ran.returncode == 0, ran.err
    assert ran.out == "42\n"
    assert sshd.read_target_file(f"{marker}-exec") == b"42\n"
    sshd.remove_target_path(f"{marker}-exec")
