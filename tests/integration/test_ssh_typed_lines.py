"""Typed command lines of an interactive shell, as ``shell_line`` audit events: a
real OpenSSH client under tmux -> hoopd -> a real sshd's bash."""

from __future__ import annotations

import shlex

from tests.integration.test_ssh_engine import (  # noqa: F401 - pytest fixtures
    SshGateway,
    client,
    gateway,
    new_session_records,
)
from tests.support.gateway import session_ids
from tests.support.sshclient import SshClient, TmuxSession


def test_typed_lines_are_recorded_as_shell_line_events(
    gateway: SshGateway,  # noqa: F811
    client: SshClient,  # noqa: F811
) -> None:
    before = session_ids(gateway)
    ssh = ["ssh", *client.ssh_options(), "-p", str(client.port), "-tt", client.destination]
    script = shlex.join(ssh) + '; echo "[ssh exited $?]"; sleep 60'
    with TmuxSession.start(["sh", "-c", script], env=client.env()) as tmux:
        tmux.type("echo hello")
        tmux.wait_for(r"^hello$")
        tmux.type("echo wrold", enter=False)  # a typo, corrected with backspaces
        tmux.send_keys("BSpace", "BSpace", "BSpace", "BSpace")
        tmux.type("orld-42")
        tmux.wait_for(r"^world-42$")
        tmux.type("exit")
        tmux.wait_for(r"^\[ssh exited 0\]$")
    _session, records = new_session_records(gateway, before)
    lines = [r["body"] for r in records if r["kind"] == "shell_line"]
    assert lines == [
        {"channel": 1, "line": "echo hello"},
        {"channel": 1, "line": "echo world-42"},  # as corrected, not as first typed
        {"channel": 1, "line": "exit"},
    ]
    # Each line follows the stdin record that ended it, and nothing judged it.
    kinds = [r["kind"] for r in records]
    first = kinds.index("shell_line")
    assert kinds[first - 1] == "stdin"
    assert [r["body"]["kind"] for r in records if r["kind"] == "statement"] == ["shell"]
