"""The gateway's configuration file: loading and validation, and the ``[gateway]``,
``[client_tls]``, ``[recording]``, ``[policy]``, ``[approvals]`` and ``[[tokens]]``
tables.

Guarantees:

* :func:`load_config` and :func:`config_from_dict` either return a complete, valid
  :class:`GatewayConfig` or raise :class:`ConfigError` listing *every* problem found,
  one per line, each as ``<file>: <key path>: <what is wrong>``.
* Unknown keys are refused at every level, so a misspelt key is never silently ignored.
* Relative paths are resolved against the directory of the configuration file.
* Secret values are not read while loading and never appear in a message or ``repr``;
  :func:`check_secrets` checks at start that each one can be read, and
  :meth:`SecretRef.resolve` reads it afresh at dial time so rotation needs no restart.

The typed, immutable form (and :class:`ConfigError`) is defined in
:mod:`hoopd.config_model` and re-exported here; ``[[connections]]`` is parsed in
:mod:`hoopd.config_connections`, the identity tables in :mod:`hoopd.config_identity`,
and single values are checked by :mod:`hoopd.config_values`.
docs/configuration.md documents every key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Any, cast

from hoopd.config_connections import connection_configs
from hoopd.config_identity import (
    OidcIssuerConfig,
    identity_section,
    oidc_issuers,
    ssh_key_bindings,
    token_expiry,
    token_scope,
)
from hoopd.config_model import (
    DURABILITIES,
    KNOWN_PROTOCOLS,
    LOG_LEVELS,
    SSH_AUTH_METHODS,
    TARGET_TLS_MODES,
    WEBHOOK_FORMATS,
    ApprovalsConfig,
    ClientTLSConfig,
    ConfigError,
    ConnectionConfig,
    Durability,
    GatewayConfig,
    PolicyConfig,
    RecordingConfig,
    SecretRef,
    SshTargetConfig,
    TargetConfig,
    TargetTLS,
    TokenConfig,
    WebhookFormat,
)
from hoopd.config_table import Problems, Table
from hoopd.config_values import (
    check_loopback_listen,
    check_sha256,
    check_webhook_url,
    parse_listen,
)

__all__ = [
    "DURABILITIES",
    "KNOWN_PROTOCOLS",
    "LOG_LEVELS",
    "SSH_AUTH_METHODS",
    "TARGET_TLS_MODES",
    "WEBHOOK_FORMATS",
    "ApprovalsConfig",
    "ClientTLSConfig",
    "ConfigError",
    "ConnectionConfig",
    "Durability",
    "GatewayConfig",
    "PolicyConfig",
    "RecordingConfig",
    "SecretRef",
    "SshTargetConfig",
    "TargetConfig",
    "TargetTLS",
    "TokenConfig",
    "WebhookFormat",
    "approval_store_dir",
    "check_secrets",
    "config_from_dict",
    "load_config",
    "token_store_dir",
]


def load_config(path: Path | str, *, protocols: Set[str] = KNOWN_PROTOCOLS) -> GatewayConfig:
    """Read and validate a TOML configuration file (secrets are not read: see
    :func:`check_secrets`)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, path, protocols=protocols)


def check_secrets(cfg: GatewayConfig) -> list[str]:
    """The start-time check of what is otherwise read only at dial time.

    Returns one message per problem (empty when all is well): each target's secret
    must resolve, and each ``ca_file`` must be readable. Values are never included.
    """
    problems: list[str] = []
    for i, conn in enumerate(cfg.connections):
        try:
            conn.target.secret.resolve()
        except ConfigError as exc:
            problems.extend(exc.problems)
        ca_file = conn.target.ca_file
        if ca_file is not None and not (ca_file.is_file() and os.access(ca_file, os.R_OK)):
            problems.append(f"{cfg.source}: connections[{i}].target.ca_file: cannot read {ca_file}")
    return problems


def config_from_dict(
    data: Mapping[str, Any], source: Path, *, protocols: Set[str] = KNOWN_PROTOCOLS
) -> GatewayConfig:
    """Validate already-parsed TOML data; ``source`` is named in messages and is the
    base for relative paths. Raises :class:`ConfigError` listing every problem."""
    problems = Problems(source)
    root = Table(data, "", problems, source.absolute().parent)

    gw = root.table("gateway", required=True)
    data_dir = gw.path("data_dir", required=True)
    log_level = gw.choice("log_level", LOG_LEVELS, "info")
    startup_timeout = gw.number("startup_timeout_seconds", 10.0)
    # 0 switches the delay off, which only tests should want.
    auth_delay = gw.number("auth_failure_delay_seconds", 0.5, allow_zero=True)
    connect_timeout = gw.number("connect_timeout_seconds", 10.0)
    idle_timeout = gw.number("idle_timeout_seconds", 0.0, allow_zero=True)
    max_message = gw.integer("max_message_bytes", 128 * 1024 * 1024, 1, None)
    gw.done()

    client_tls = _client_tls(root.table("client_tls"))
    rec = root.table("recording")
    recording = RecordingConfig(
        cast(Durability, rec.choice("durability", DURABILITIES, "process-crash"))
    )
    rec.done()
    pol = root.table("policy")
    policy = PolicyConfig(pol.path("directory"))
    pol.done()
    approvals = _approvals(root.table("approvals"))
    tokens = _tokens(root.tables("tokens"))
    ssh_keys = ssh_key_bindings(root.tables("ssh_keys"))
    identity = identity_section(root.table("identity"))
    oidc = oidc_issuers(root.table("oidc"))
    connections = connection_configs(root.tables("connections"), protocols, idle_timeout)
    root.done()
    _check_accept_on(root, oidc, connections)

    if problems.lines:
        raise ConfigError(problems.lines)
    return GatewayConfig(
        source=source,
        data_dir=data_dir or Path(),
        log_level=log_level,
        startup_timeout_seconds=startup_timeout,
        auth_failure_delay_seconds=auth_delay,
        connect_timeout_seconds=connect_timeout,
        max_message_bytes=max_message,
        client_tls=client_tls,
        recording=recording,
        policy=policy,
        tokens=tokens,
        connections=connections,
        approvals=approvals,
        identity=identity,
        oidc_issuers=oidc,
        ssh_keys=ssh_keys,
    )


def _check_accept_on(
    root: Table, issuers: Sequence[OidcIssuerConfig], connections: Sequence[ConnectionConfig]
) -> None:
    names = {c.name for c in connections}
    for i, issuer in enumerate(issuers):
        for name in issuer.accept_on:
            if name not in names:
                root.problem(f"oidc.issuers[{i}].accept_on", f"no connection is named {name!r}")


def _client_tls(t: Table) -> ClientTLSConfig:
    cert_file, key_file = t.path("cert_file"), t.path("key_file")
    if (cert_file is None) != (key_file is None):
        missing, given = (
            ("key_file", "cert_file") if key_file is None else ("cert_file", "key_file")
        )
        t.problem(missing, f"required because {given} is set (the two go together)")
    allow = t.boolean("allow_plaintext_on_loopback", False)
    t.done()
    return ClientTLSConfig(cert_file, key_file, allow)


def _approvals(t: Table) -> ApprovalsConfig:
    listen_text = t.optional_text("admin_listen", check=check_loopback_listen)
    admin_listen = parse_listen(listen_text)[0] if listen_text else None
    webhook_url = t.optional_text("webhook_url", check=check_webhook_url)
    webhook_format = t.choice("webhook_format", WEBHOOK_FORMATS, "json")
    deadline = t.number("default_deadline_seconds", 300.0)
    store_dir = t.path("store_dir")
    t.done()
    return ApprovalsConfig(
        admin_listen, webhook_url, cast(WebhookFormat, webhook_format), deadline, store_dir
    )


def approval_store_dir(config: GatewayConfig) -> Path:
    """The directory of the approval request store (``[approvals] store_dir``, or the
    data directory)."""
    return config.approvals.store_dir or config.data_dir


def token_store_dir(config: GatewayConfig) -> Path:
    """The directory of the token and revocation store (``[identity] store_dir``, or
    the approval store's directory): gateways that share it share revocations."""
    return config.identity.store_dir or approval_store_dir(config)


def _tokens(tables: list[Table]) -> tuple[TokenConfig, ...]:
    tokens: list[TokenConfig] = []
    first_index: dict[str, int] = {}
    for i, t in enumerate(tables):
        identity = t.text("identity")
        groups = t.text_list("groups")
        digest = t.text("sha256", check=check_sha256)
        expires_at = token_expiry(t)
        scope = token_scope(t)
        t.done()
        if digest in first_index:
            t.problem("sha256", f"same token hash as tokens[{first_index[digest]}]")
        elif digest:
            first_index[digest] = i
        tokens.append(TokenConfig(identity, groups, digest, expires_at, scope))
    return tuple(tokens)
