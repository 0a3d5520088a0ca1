"""What an SSH user name selects, and the host command a session channel asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoopd.config import ConnectionConfig, SecretRef, SshTargetConfig, TargetConfig
from hoopd.events import HostCommand
from hoopd.gateway import Listener
from hoopd.protocols.ssh.commands import host_command
from hoopd.protocols.ssh.users import select_target


def ssh_connection(
    name: str, user: str = "deploy", logins: tuple[str, ...] = ()
) -> ConnectionConfig:
    ssh = SshTargetConfig("key", "ssh-ed25519 AAAA", None, logins)
    target = TargetConfig("127.0.0.1", 22, "", user, SecretRef(file=Path("/k")), "disable", ssh=ssh)
    return ConnectionConfig(name, "ssh", "127.0.0.1", 2222, {}, target)


LISTENER = Listener(
    "127.0.0.1",
    2222,
    "ssh",
    (ssh_connection("web", logins=("www-data", "backup")), ssh_connection("db.1")),
)


@pytest.mark.parametrize(
    ("username", "connection", "login"),
    [
        ("web", "web", "deploy"),
        ("www-data+web", "web", "www-data"),
        ("backup+web", "web", "backup"),
        ("deploy+web", "web", "deploy"),  # the default account, named
        ("db.1", "db.1", "deploy"),
    ],
)
def test_a_user_name_selects_a_connection_and_login(
    username: str, connection: str, login: str
) -> None:
    selected = select_target(username, LISTENER)
    assert selected is not None
    assert (selected.connection.name, selected.login) == (connection, login)


@pytest.mark.parametrize(
    "username",
    ["", "nosuch", "root+web", "www-data+db.1", "web+", "+web", "a+b+web", "WEB", "web "],
)
def test_anything_else_selects_nothing(username: str) -> None:
    assert select_target(username, LISTENER) is None


def test_a_postgres_connection_on_the_listener_is_not_an_ssh_target() -> None:
    pg_target = TargetConfig("127.0.0.1", 5432, "app", "app", SecretRef(env="X"))
    pg = ConnectionConfig("pg", "postgres", "127.0.0.1", 2222, {}, pg_target)
    assert select_target("pg", Listener("127.0.0.1", 2222, "ssh", (pg,))) is None


def test_exec_commands_carry_their_argv() -> None:
    assert host_command("cat '/etc/my file' | wc -l", None) == HostCommand(
        "exec", "cat '/etc/my file' | wc -l", ("cat", "/etc/my file", "|", "wc", "-l")
    )
    # A line a shell could not split is still judged, by its text; argv stays empty.
    assert host_command("echo 'unterminated", None) == HostCommand("exec", "echo 'unterminated")


def test_shells_and_subsystems() -> None:
    assert host_command(None, None) == HostCommand("shell", "shell")
    assert host_command(None, "sftp") == HostCommand("subsystem", "sftp")
    assert host_command("", None) == HostCommand("exec", "")
