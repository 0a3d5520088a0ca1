"""``idle_timeout_seconds`` on an SSH connection: a session with no data either way for
that long is ended (ssh says why and exits 255, the command stops on the target, the
recording ends with ``idle``); one that keeps printing is not. Real ssh -> hoopd ->
a real sshd."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    _wait_gone,
    new_session_records,
    remote_sleeper,
    running_ssh_gateway,
)
from tests.support.gateway import Token, session_ids
from tests.support.sshserver import SshServer

IDLE_SECONDS = 1.5
POLICY = "defaults:\n  - unmatched: allow\n"


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    tokens = [Token("alice", ("dev",))]
    workdir = tmp_path_factory.mktemp("gw")
    with running_ssh_gateway(
        sshd, workdir, POLICY, tokens, idle_timeout_seconds=IDLE_SECONDS
    ) as gw:
        yield gw


def test_a_silent_session_ends_and_its_command_stops(
    gateway: SshGateway, sshd: SshServer, tmp_path: Path
) -> None:
    before = session_ids(gateway)
    started = time.monotonic()
    with remote_sleeper(gateway.client(tmp_path / "c"), sshd) as (proc, sleeper):
        _out, err = proc.communicate(timeout=IDLE_SECONDS * 10)
    assert proc.returncode == 255
    assert "without activity (idle timeout)" in err.decode()
    assert time.monotonic() - started >= IDLE_SECONDS
    _wait_gone(sshd, sleeper)
    session, records = new_session_records(gateway, before)
    assert [r["kind"] for r in records][-2:] == ["idle", "session_end"]
    assert session["end_reason"] == "idle timeout"


def test_a_session_that_keeps_printing_is_not_idle(gateway: SshGateway, tmp_path: Path) -> None:
    ticks = int(IDLE_SECONDS * 3 / 0.3)
    loop = f"for i in $(seq {ticks}); do echo $i; sleep 0.3; done"
    done = gateway.client(tmp_path / "c").ssh(loop)
    assert done.returncode == 0, done.err
    assert done.out.split() == [str(i) for i in range(1, ticks + 1)]
