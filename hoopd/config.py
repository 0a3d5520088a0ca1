"""The gateway's configuration file: loading, validation, and the typed, immutable
form the rest of hoopd reads.

Guarantees:

* :func:`load_config` and :func:`config_from_dict` either return a complete, valid
  :class:`GatewayConfig` or raise :class:`ConfigError` listing *every* problem found,
  one per line, each as ``<file>: <key path>: <what is wrong>``.
* Unknown keys are refused at every level, so a misspelt key is never silently ignored.
* Relative paths are resolved against the directory of the configuration file.
* Secret values are not read while loading and never appear in a message or ``repr``;
  :func:`check_secrets` checks at start that each one can be read, and
  :meth:`SecretRef.resolve` reads it afresh at dial time so rotation needs no restart.

docs/configuration.md documents every key.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from hoopd.config_identity import (
    IdentityConfig,
    OidcIssuerConfig,
    SshKeyConfig,
    identity_section,
    is_loopback_host,
    oidc_issuers,
    ssh_key_bindings,
    token_expiry,
    token_scope,
)
from hoopd.config_table import ABSENT, Problems, Table, shown

KNOWN_PROTOCOLS: Final[frozenset[str]] = frozenset({"postgres", "ssh"})
SSH_AUTH_METHODS: Final = ("key", "password")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
DURABILITIES: Final = ("process-crash", "power-loss")
TARGET_TLS_MODES: Final = ("disable", "require", "verify-full")
WEBHOOK_FORMATS: Final = ("json", "slack")

Durability = Literal["process-crash", "power-loss"]
TargetTLS = Literal["disable", "require", "verify-full"]
WebhookFormat = Literal["json", "slack"]

# A secret file is small; the cap stops a mistaken path such as /dev/zero hanging a dial.
_MAX_SECRET_FILE_BYTES: Final = 64 * 1024
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


class ConfigError(Exception):
    """The configuration cannot be used.

    ``problems`` holds one complete message per problem; ``str()`` joins them with
    newlines. Messages never contain a secret value.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True, repr=False)
class SecretRef:
    """Where a target credential lives: an environment variable or a file.

    ``where`` names the key the reference came from (for messages only). The value is
    read by :meth:`resolve`, never stored here.
    """

    env: str | None = None
    file: Path | None = None
    where: str = field(default="secret", compare=False)

    def resolve(self) -> str:
        """Read the secret now; a file's trailing newlines are stripped.

        Raises :class:`ConfigError` naming the key and the variable or file (never the
        value) when it is unset, unreadable or empty.
        """
        if self.env is not None:
            origin = f"environment variable {self.env}"
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{self.where}: {origin} is not set")
        elif self.file is not None:
            origin = f"file {self.file}"
            value = self._read_file(origin)
        else:
            raise ConfigError(f"{self.where}: names neither env nor file")
        if not value:
            raise ConfigError(f"{self.where}: {origin} is empty")
        return value

    def _read_file(self, origin: str) -> str:
        assert self.file is not None
        # `from None` everywhere: a chained exception could carry the bytes read.
        try:
            with self.file.open("rb") as f:
                raw = f.read(_MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{self.where}: cannot read {origin}: {exc.strerror}") from None
        if len(raw) > _MAX_SECRET_FILE_BYTES:
            raise ConfigError(f"{self.where}: {origin} is larger than 64 KiB") from None
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"{self.where}: {origin} is not valid UTF-8") from None

    def __repr__(self) -> str:
        source = f"env={self.env!r}" if self.env is not None else f"file={str(self.file)!r}"
        return f"SecretRef({source})"


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """The system a connection leads to, and the credential hoopd presents to it.

    PostgreSQL targets use ``database`` and the TLS keys. SSH targets use ``ssh``;
    their ``secret`` is a private key (``auth = "key"``) or a password.
    """

    host: str
    port: int
    database: str
    user: str
    secret: SecretRef
    tls: TargetTLS = "require"
    ca_file: Path | None = None
    server_name: str | None = None
    ssh: SshTargetConfig | None = None


@dataclass(frozen=True, slots=True)
class SshTargetConfig:
    """How hoopd logs in to an SSH target and knows it is the right one.

    ``auth``: the secret is a private key (``key``) or a password. The target's host
    key must match ``host_key`` (one ``type base64`` line) or an entry for the target
    in ``known_hosts``. ``logins`` are other target accounts a client may ask for
    (``LOGIN+CONNECTION`` as its user name); the target ``user`` is the default.
    """

    auth: str = "key"
    host_key: str | None = None
    known_hosts: Path | None = None
    logins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """A named route: clients reach ``listen_host:listen_port``, select it by ``name``."""

    name: str
    protocol: str
    listen_host: str
    listen_port: int
    # Kept as a read-only copy; left out of the hash (a mapping has none) but compared.
    labels: Mapping[str, str] = field(hash=False)
    target: TargetConfig
    #: Seconds without a byte either way after which a session ends (0: never);
    #: the connection's own ``idle_timeout_seconds``, else the gateway's.
    idle_timeout_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def listen_address(self) -> tuple[str, int]:
        return (self.listen_host, self.listen_port)


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """A static API token: who it stands for, the SHA-256 (hex) of the token, when it
    expires (Unix seconds) and its scope (None: unrestricted)."""

    identity: str
    groups: tuple[str, ...]
    sha256: str
    expires_at: float = math.inf
    scope: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ClientTLSConfig:
    """TLS for the client leg; no files means a generated self-signed certificate."""

    cert_file: Path | None = None
    key_file: Path | None = None
    allow_plaintext_on_loopback: bool = False


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    durability: Durability = "process-crash"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """``directory``: the policy files (YAML, kept in git); None runs without policy,
    letting every command through (each is still recorded)."""

    directory: Path | None = None


@dataclass(frozen=True, slots=True)
class ApprovalsConfig:
    """Just-in-time approval: ``admin_listen`` (loopback only) serves the admin API, None
    serves none; ``webhook_url`` is told when a request opens and when it is decided."""

    admin_listen: tuple[str, int] | None = None
    webhook_url: str | None = None
    webhook_format: WebhookFormat = "json"
    default_deadline_seconds: float = 300.0
    #: Where the request store lives; None: the data directory. Gateways that point
    #: here share their requests (one approver decides for all of them).
    store_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole configuration; ``source`` is the file it came from (used in messages)."""

    source: Path
    data_dir: Path
    log_level: str
    startup_timeout_seconds: float
    auth_failure_delay_seconds: float
    connect_timeout_seconds: float
    max_message_bytes: int
    client_tls: ClientTLSConfig
    recording: RecordingConfig
    policy: PolicyConfig
    tokens: tuple[TokenConfig, ...]
    connections: tuple[ConnectionConfig, ...]
    approvals: ApprovalsConfig = ApprovalsConfig()
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    oidc_issuers: tuple[OidcIssuerConfig, ...] = ()
    ssh_keys: tuple[SshKeyConfig, ...] = ()


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
    connections = _connections(root.tables("connections"), protocols, idle_timeout)
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
    listen_text = t.optional_text("admin_listen", check=_check_loopback_listen)
    admin_listen = _parse_listen(listen_text)[0] if listen_text else None
    webhook_url = t.optional_text("webhook_url", check=_check_webhook_url)
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
        digest = t.text("sha256", check=_check_sha256)
        expires_at = token_expiry(t)
        scope = token_scope(t)
        t.done()
        if digest in first_index:
            t.problem("sha256", f"same token hash as tokens[{first_index[digest]}]")
        elif digest:
            first_index[digest] = i
        tokens.append(TokenConfig(identity, groups, digest, expires_at, scope))
    return tuple(tokens)


def _connections(
    tables: list[Table], protocols: Set[str], idle_timeout: float
) -> tuple[ConnectionConfig, ...]:
    conns: list[ConnectionConfig] = []
    names: dict[str, int] = {}
    listen_protocols: dict[tuple[str, int], tuple[str, int]] = {}
    for i, c in enumerate(tables):
        name = c.text("name", check=_check_name)
        protocol = c.choice("protocol", sorted(protocols), "postgres")
        listen_text = c.text("listen", check=lambda v: _parse_listen(v)[1])
        host, port = _parse_listen(listen_text)[0] if listen_text else ("", 0)
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
        env = sub.optional_text("env", check=_check_env_name)
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


def _check_name(value: str) -> str | None:
    if _NAME_RE.fullmatch(value):
        return None
    return f"may contain only letters, digits, '_', '.' and '-' (got {shown(value)})"


def _check_sha256(value: str) -> str | None:
    if _SHA256_RE.fullmatch(value):
        return None
    # Not shown: someone may have pasted the token itself here.
    return (
        "must be 64 lowercase hex characters, the SHA-256 of the token as printed by"
        f" `hoopd token hash` (got {len(value)} characters, not shown)"
    )


def _check_env_name(value: str) -> str | None:
    if "=" in value or "\0" in value:
        return f"is not a valid environment variable name (got {shown(value)})"
    return None


def _check_loopback_listen(value: str) -> str | None:
    (host, _), error = _parse_listen(value)
    if error:
        return error
    if is_loopback_host(host):
        return None
    # The admin API speaks plain HTTP and carries bearer tokens.
    return (
        "must be a loopback address such as 127.0.0.1:8433, because the admin API speaks"
        f" plain HTTP and carries tokens (got {shown(value)})"
    )


def _check_webhook_url(value: str) -> str | None:
    try:
        parsed = urlsplit(value)
        usable = parsed.scheme in ("http", "https") and bool(parsed.hostname) and parsed.port != 0
    except ValueError:  # a bad port or bracketed host
        usable = False
    if usable:
        return None
    # Not shown: a webhook URL often carries a secret in its path (Slack's do).
    return "must be an http:// or https:// URL with a host (value not shown)"


def _parse_listen(text: str) -> tuple[tuple[str, int], str | None]:
    """``(host, port), None`` or a placeholder and the error message."""
    bad = ("", 0), f"must be host:port such as 127.0.0.1:6432 or [::1]:6432 (got {shown(text)})"
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            return bad
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return ("", 0), f"{shown(host)} in brackets is not an IPv6 address"
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            return ("", 0), f"an IPv6 address needs brackets, as in [::1]:6432 (got {shown(text)})"
        if not sep or not host or any(ch.isspace() for ch in host):
            return bad
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        return ("", 0), f"port must be a number from 0 to 65535 (got {shown(port_text)})"
    return (host, int(port_text)), None
