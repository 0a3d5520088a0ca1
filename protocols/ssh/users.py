"""Which connection (and target account) an SSH user name selects.

``CONNECTION`` selects the connection and its target ``user``;
``LOGIN+CONNECTION`` selects another target account, allowed only when the
connection's ``target.logins`` lists it (or it is the target ``user``).
Guarantee: :func:`select_target` returns None for anything else, including a
connection that is not on this listener or is not an SSH connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoopd.config import ConnectionConfig
from hoopd.gateway import Listener


@dataclass(frozen=True, slots=True)
class Selected:
    """The connection a client asked for and the account hoopd logs in as."""

    connection: ConnectionConfig
    login: str


def select_target(username: str, listener: Listener) -> Selected | None:
    login, plus, name = username.rpartition("+")
    connection = listener.connection_named(name)
    if connection is None or connection.target.ssh is None:
        return None
    if not plus:
        return Selected(connection, connection.target.user)
    if login == connection.target.user or login in connection.target.ssh.logins:
        return Selected(connection, login)
    return None
