"""The typed, immutable form of the configuration that the rest of hoopd reads, the
values its keys may take, and :class:`ConfigError`.

Guarantees:

* Each part of the configuration is a frozen dataclass; a connection's ``labels`` are
  held as a read-only copy.
* A :class:`SecretRef` holds where a secret lives, never its value: the value is read
  afresh by :meth:`SecretRef.resolve`, and neither a message nor a ``repr`` shows it.

Built and checked by :func:`hoopd.config.config_from_dict`, which re-exports every
public name here; docs/configuration.md documents every key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from hoopd.config_identity import IdentityConfig, OidcIssuerConfig, SshKeyConfig

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
