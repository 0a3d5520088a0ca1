"""The locale a client sends (``SendEnv LANG LC_*``) reaches its target session, as
with OpenSSH's stock configuration, and is recorded with the channel; any other
variable stays at the gateway, even one the target would accept. Real ssh -> hoopd
-> a real sshd that accepts ``LANG LC_* HOOPD_TEST_*``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.gateway import Token, session_ids
from tests.support.sshclient import SshClient, SshResult
from tests.support.sshserver import SshServer


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = "defaults:\n  - unmatched: allow\n"
    tokens = [Token("alice", ("dev",))]
    with running_ssh_gateway(sshd, tmp_path_factory.mktemp("gw"), policy, tokens) as gw:
        yield gw


ENV = {"LC_MESSAGES": "C.UTF-8", "HOOPD_TEST_PRELOAD": "/tmp/evil.so"}
SHOW = 'echo "${LC_MESSAGES:-unset} ${HOOPD_TEST_PRELOAD:-unset}"'


def _with_env(client: SshClient) -> SshResult:
    argv = [
        "ssh", *client.ssh_options(), "-p", str(client.port), "-o", f"SendEnv={' '.join(ENV)}",
        client.destination, SHOW,
    ]  # fmt: skip
    return client.run(argv, extra_env=ENV)


def test_the_locale_passes_and_nothing_else_does(
    gateway: SshGateway, sshd: SshServer, tmp_path: Path
) -> None:
    direct = SshClient(
        sshd.host, sshd.port, sshd.user, tmp_path / "direct",
        identity_file=sshd.client_key, known_hosts=[sshd.known_hosts_line],
    )  # fmt: skip
    assert _with_env(direct).out == "C.UTF-8 /tmp/evil.so\n"  # the target takes both
    before = session_ids(gateway)
    done = _with_env(gateway.client(tmp_path / "c"))
    assert done.returncode == 0, done.err
    assert done.out == "C.UTF-8 unset\n"
    _session, records = new_session_records(gateway, before)
    [opened] = [r["body"] for r in records if r["kind"] == "channel_open"]
    assert opened["env"] == {"LC_MESSAGES": "C.UTF-8"}
