"""Every TCP connection the gateway holds for a session, to the client and to the
target, has keep-alive probes armed, so a peer whose host vanishes is noticed and its
session ends. Checked as the kernel reports it (``ss -o``: ``timer:(keepalive,...)``)
for a live psql session and a live ssh session."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.integration.test_ssh_engine import remote_sleeper, running_ssh_gateway
from tests.support.gateway import Token, running_gateway
from tests.support.pgserver import PgServer
from tests.support.sshserver import SshServer

WAIT_SECONDS = 10.0


def _gateway_sockets(pid: int, port_filter: str) -> list[str]:
    """``ss``'s lines for the established TCP sockets of process ``pid`` that match
    ``port_filter`` (for example ``sport = :6432``)."""
    done = subprocess.run(
        ["ss", "-Htnpo", "state", "established", f"( {port_filter} )"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if f"pid={pid}," in line]


def _assert_probing(pid: int, port_filter: str) -> None:
    """The gateway holds a socket for ``port_filter`` and each such socket has its
    keep-alive timer armed. (While data is in flight ``ss`` shows the retransmission
    timer instead, so look again until the connection is quiet.)"""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        lines = _gateway_sockets(pid, port_filter)
        if lines and all("timer:(keepalive," in line for line in lines):
            return
        assert time.monotonic() < deadline, f"no probing socket for {port_filter}: {lines}"
        time.sleep(0.1)


def test_both_legs_of_a_postgres_session_probe_their_peer(pg: PgServer, tmp_path: Path) -> None:
    with running_gateway(pg, tmp_path / "gw") as gw, gw.connect() as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        _assert_probing(gw.pid, f"sport = :{gw.ports['appdb']}")
        _assert_probing(gw.pid, f"dport = :{pg.port}")


def test_both_legs_of_an_ssh_session_probe_their_peer(sshd: SshServer, tmp_path: Path) -> None:
    policy = "defaults:\n  - unmatched: allow\n"
    tokens = [Token("alice", ("dev",))]
    with (
        running_ssh_gateway(sshd, tmp_path, policy, tokens) as gw,
        remote_sleeper(gw.client(tmp_path / "c"), sshd),
    ):
        _assert_probing(gw.pid, f"sport = :{gw.ssh_port}")
        _assert_probing(gw.pid, f"dport = :{sshd.port}")
