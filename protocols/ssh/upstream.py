"""Dialling the target's sshd with the credentials only the gateway holds.

Guarantees: the target's host key is checked against the connection's pinned
``host_key`` (or its ``known_hosts`` file) before any credential is sent; a key
that does not match ends the dial with :class:`TargetUnavailable`, never a
connection. No user or system SSH configuration, agent or default key is used to
log in: only the connection's secret (a client's forwarded agent, when a policy
allows it, is only offered to the target's session). Messages never contain the
secret.
"""

from __future__ import annotations

import socket
from typing import cast

import asyncssh

from hoopd.config import ConfigError, ConnectionConfig
from hoopd.relay import keep_alive

# AES-GCM first: on this leg the gateway chooses, and it is the fastest on x86
# (see the SSH section of the performance notes); the rest are asyncssh's defaults.
_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class TargetUnavailable(Exception):
    """The target cannot be reached or refused us; ``message`` is for the client,
    ``detail`` (never a secret) for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def _known_hosts(
    connection: ConnectionConfig,
) -> (
    asyncssh.SSHKnownHosts
    | tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]
):
    ssh = connection.target.ssh
    assert ssh is not None
    if ssh.host_key is not None:
        return ([asyncssh.import_public_key(ssh.host_key)], [], [])
    assert ssh.known_hosts is not None
    return asyncssh.read_known_hosts(str(ssh.known_hosts))


async def dial(
    connection: ConnectionConfig, login: str, timeout: float, *, agent_forward_path: str = ""
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to the target as ``login``. With
    ``agent_forward_path``, every session opened on it asks the target for agent
    forwarding, and the target's agent connections go to that socket; it is never
    used to authenticate to the target."""
    target, ssh = connection.target, connection.target.ssh
    assert ssh is not None
    where = f'the target of connection "{connection.name}"'
    unusable = f"the gateway's credentials for {where} are unusable"
    try:
        secret = target.secret.resolve()
        known_hosts = _known_hosts(connection)
        keys = [asyncssh.import_private_key(secret)] if ssh.auth == "key" else None
    except ConfigError as exc:  # names the variable or file, never the value
        raise TargetUnavailable(unusable, detail=str(exc)) from None
    except (OSError, ValueError) as exc:  # KeyImportError is a ValueError
        # Not chained, and only the exception's type logged: it could quote the key.
        detail = f"{type(exc).__name__} reading its key or known_hosts"
        raise TargetUnavailable(unusable, detail=detail) from None
    try:
        conn = await asyncssh.connect(
            target.host,
            target.port,
            username=login,
            known_hosts=known_hosts,
            client_keys=keys,
            password=None if ssh.auth == "key" else secret,
            preferred_auth="publickey" if ssh.auth == "key" else "password,keyboard-interactive",
            agent_path=None,
            agent_forwarding=agent_forward_path or False,
            config=None,
            encryption_algs=_CIPHERS,
            connect_timeout=timeout,
            login_timeout=timeout,
            # No SSH-level keepalive: TCP probes find a vanished target (below);
            # asyncssh's resets a timer for every packet, a few percent of a transfer.
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise TargetUnavailable(
            f"the host key of {where} does not match the one configured for it;"
            " the gateway refuses to connect"
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise TargetUnavailable(f"{where} refused the gateway's credentials") from exc
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise TargetUnavailable(f"cannot reach {where}: {_reason(exc)}") from exc
    sock = conn.get_extra_info("socket")
    if sock is not None:
        keep_alive(cast(socket.socket, sock))
    return conn


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
