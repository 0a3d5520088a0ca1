"""Output masking on SSH: the policy's detector rules apply to what a command prints,
across packet boundaries and around terminal escapes; the client and the recording
see the masked bytes only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh_engine import (
    SshGateway,
    data_of,
    new_session_records,
    running_ssh_gateway,
)
from tests.support.gateway import Token, session_ids
from tests.support.sshserver import SshServer

CARD = "4111 1111 1111 1111"  # Luhn-valid
NOT_A_CARD = "4111 1111 1111 1112"

POLICY = """
rules:
  - name: the-rest
    action: allow
  - name: cards
    action: mask
    detectors: [card]
    style: redact
"""


@pytest.fixture(scope="module")
def gateway(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    workdir = tmp_path_factory.mktemp("gw-mask")
    with running_ssh_gateway(sshd, workdir, POLICY, [Token("alice", ("dev",))]) as gw:
        yield gw


def test_a_card_printed_in_two_packets_and_coloured_is_masked(
    gateway: SshGateway, tmp_path: Path
) -> None:
    client = gateway.client(tmp_path / "client")
    before = session_ids(gateway)
    # Two writes a moment apart (two SSH packets), an escape sequence inside the
    # value, and a near miss that must stay.
    command = (
        "printf '4111 1111 '; sleep 0.3; printf '\\033[31m1111 1111\\033[0m paid\\n';"
        f" echo '{NOT_A_CARD}'"
    )
    done = client.ssh(command)
    assert done.returncode == 0, done.err
    assert b"1111 1111" not in done.stdout.split(b"\n")[0]
    assert b"\x1b[31m" in done.stdout and b"paid" in done.stdout
    assert NOT_A_CARD.encode() in done.stdout
    _, records = new_session_records(gateway, before)
    recorded = data_of(records, "stdout")
    assert recorded == done.stdout  # the recording holds what the client was shown
    assert CARD.encode() not in recorded
