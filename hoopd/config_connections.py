"""The ``[[connections]]`` tables: each connection's name, protocol and listen
address, its target (PostgreSQL or SSH) and where the target's secret lives.

Parsed by :func:`hoopd.config.config_from_dict` with the same guarantees as the rest
of the file: every problem is reported with its key, unknown keys are refused.
Further:

* Names are unique, and connections sharing a listen address use the same protocol.
* A secret written inline is refused, and its value is never quoted in a message.
* A PostgreSQL target's TLS keys agree with each other; an SSH target names the host
  key it must present (``host_key`` or ``known_hosts``).

docs/configuration.md documents every key.
"""

from __future__ import annotations

from collections.abc import Set
from typing import cast

from hoopd.config_model import (
    SSH_AUTH_METHODS,
    TARGET_TLS_MODES,
    ConnectionConfig,
    SecretRef,
    SshTargetConfig,
    TargetConfig,
    TargetTLS,
)
from hoopd.config_table import ABSENT, Table, shown
from hoopd.config_values import check_env_name, check_name, parse_listen


def connection_configs(
    tables: list[Table], protocols: Set[str], idle_timeout: float
) -> tuple[ConnectionConfig, ...]:
    """The ``[[connections]]`` tables; ``idle_timeout`` is the gateway's, the default of
    each connection's ``idle_timeout_seconds``."""
    conns: list[ConnectionConfig] = []
    names: dict[str, int] = {}
    listen_protocols: dict[tuple[str, int], tuple[str, int]] = {}
    for i, c in enumerate(tables):
        name = c.text("name", check=check_name)
        protocol = c.choice("protocol", sorted(protocols), "postgres")
        listen_text = c.text("listen", check=lambda v: parse_listen(v)[1])
        host, port = parse_listen(listen_text)[0] if listen_text else ("", 0)
        labels = c.text_map("labels")
        idle = c.number("idle_timeout_seconds", idle_timeout, allow_zero=True)
        target = _target(c.table("target", required=True), name, protocol)
        c.done()
        if name in names:
            c.problem("name", f"{name!r} is already used by connections[{names[name]}]")
        elif name:
            names[name] = i
        # One listener speaks one protocol, so connections sharing it must agree.
        if listen_text:
            other_protocol, j = listen_protocols.setdefault((host, port), (protocol, i))
            if other_protocol != protocol:
                c.problem(
                    "listen",
                    f"shared with connections[{j}], which uses protocol {other_protocol!r};"
                    " connections sharing a listen address must use the same protocol",
                )
        conns.append(ConnectionConfig(name, protocol, host, port, labels, target, idle))
    return tuple(conns)


def _target(t: Table, connection: str, protocol: str) -> TargetConfig:
    if protocol == "ssh":
        return _ssh_target(t, connection)
    host = t.text("host")
    port = t.integer("port", None, 1, 65535)
    database = t.text("database")
    user = t.text("user")
    secret = _secret(t, connection)
    tls = t.choice("tls", TARGET_TLS_MODES, "require")
    ca_file = t.path("ca_file")
    server_name = t.optional_text("server_name")
    t.done()
    if tls == "verify-full" and ca_file is None and "ca_file" not in t.failed:
        t.problem("ca_file", 'required when tls = "verify-full" (the CA that signs the target)')
    if tls != "verify-full" and ca_file is not None:
        # A CA file that is silently unused would suggest a verification that is not made.
        t.problem("ca_file", f'only used with tls = "verify-full" (tls is {tls!r})')
    if tls == "disable" and server_name is not None:
        t.problem("server_name", 'has no use with tls = "disable"')
    return TargetConfig(
        host, port, database, user, secret, cast(TargetTLS, tls), ca_file, server_name
    )


def _ssh_target(t: Table, connection: str) -> TargetConfig:
    host = t.text("host")
    port = t.integer("port", 22, 1, 65535)
    user = t.text("user")
    secret = _secret(t, connection)
    auth = t.choice("auth", SSH_AUTH_METHODS, "key")
    host_key = t.optional_text("host_key", check=_check_host_key)
    known_hosts = t.path("known_hosts")
    logins = t.text_list("logins")
    t.done()
    if host_key is None and known_hosts is None and not {"host_key", "known_hosts"} & t.failed:
        t.problem(
            "host_key",
            "required (or known_hosts): hoopd verifies the target's host key and refuses a"
            " target it cannot verify",
        )
    ssh = SshTargetConfig(auth, host_key, known_hosts, logins)
    return TargetConfig(host, port, "", user, secret, "disable", ssh=ssh)


def _check_host_key(value: str) -> str | None:
    parts = value.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        return "must be a public key line such as 'ssh-ed25519 AAAA...'"
    return None


def _secret(t: Table, connection: str) -> SecretRef:
    key = t.key("secret")
    where = f"{t.problems.source}: {key} (connection {connection!r})"
    raw = t.raw("secret", required=True)
    if isinstance(raw, str):
        # Never echo the value: it is presumably a real password.
        t.problem(
            "secret",
            "an inline secret is refused, because configuration files get copied, backed"
            ' up and reviewed; use { env = "VARIABLE" } or { file = "/path/to/file" }',
        )
    elif isinstance(raw, dict):
        sub = Table(raw, key, t.problems, t.base, silent=t.silent)
        env = sub.optional_text("env", check=check_env_name)
        file = sub.path("file")
        sub.done()
        if (env is None) == (file is None) and not sub.failed:
            t.problem("secret", "must name exactly one of env and file")
        return SecretRef(env, file, where)
    elif raw is not ABSENT:
        t.problem(
            "secret", f'must be {{ env = "VARIABLE" }} or {{ file = "/path" }} (got {shown(raw)})'
        )
    return SecretRef(None, None, where)
