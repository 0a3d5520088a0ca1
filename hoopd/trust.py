"""How a gateway decides who is calling, assembled from its configuration.

One place builds what every entry point needs to check tokens the same way: the
server (clients and the admin API), and the CLIs that act on the store directly
(``hoopd token exchange --config``, ``hoopd blast-radius``, ``hoopd approvals``).
The token store and the signing keys both live in the token store directory, so
gateways that share it accept each other's tokens and see the same revocations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hoopd.config import GatewayConfig, token_store_dir
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.base import Identity, TokenVerifier
from hoopd.identity.oidc import OidcVerifier
from hoopd.identity.ssh_keys import KeyBindings
from hoopd.identity.tokens import StaticTokenVerifier
from hoopd.tokens.keys import KeyRing
from hoopd.tokens.service import TokenService
from hoopd.tokens.ssh_ca import SshCertificateAuthority
from hoopd.tokens.store import TokenStore
from hoopd.tokens.verifier import GatewayTokenVerifier


@dataclass(slots=True)
class Trust:
    """The parts; ``authenticator`` is the one to ask about a presented token."""

    authenticator: Authenticator
    store: TokenStore
    keys: KeyRing
    service: TokenService
    store_dir: Path


class _SubjectTokens:
    """The verifier the token endpoint uses: every kind of token, OIDC included."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def verify(self, token: str) -> Identity | None:
        return await self._authenticator.subject_token(token)


def keys_for(config: GatewayConfig) -> KeyRing:
    """The gateway's signing keys (in the token store directory)."""
    return KeyRing(token_store_dir(config), max_ttl_seconds=config.identity.max_ttl_seconds)


@contextmanager
def open_trust(config: GatewayConfig) -> Iterator[Trust]:
    """Open the token store and keys for ``config``; closed on exit.

    Raises ``sqlite3.Error``, ``OSError`` or ``KeyStoreError`` when the store or the
    keys cannot be used.
    """
    with TokenStore.open(token_store_dir(config)) as store:
        yield trust_over(config, store)


def trust_over(config: GatewayConfig, store: TokenStore) -> Trust:
    """The parts for ``config`` over an open ``store`` (which the caller closes)."""
    keys = keys_for(config)
    oidc = OidcVerifier(config.oidc_issuers) if config.oidc_issuers else None
    oidc_on: dict[str, set[str]] = {}
    for issuer in config.oidc_issuers:
        for connection in issuer.accept_on:
            oidc_on.setdefault(connection, set()).add(issuer.name)
    authenticator = Authenticator(
        StaticTokenVerifier(config.tokens),
        gateway_issuer=config.identity.issuer,
        gateway_tokens=GatewayTokenVerifier(keys, config.identity, store),
        oidc=oidc,
        oidc_issuers={issuer.issuer: issuer.name for issuer in config.oidc_issuers},
        oidc_on={name: frozenset(names) for name, names in oidc_on.items()},
        revocations=store,
        ssh_keys=KeyBindings(config.ssh_keys),
        ssh_certificates=SshCertificateAuthority(token_store_dir(config), config.identity.issuer),
    )
    service = TokenService(keys, config.identity, store, _SubjectTokens(authenticator))
    return Trust(authenticator, store, keys, service, token_store_dir(config))


def admin_verifier(config: GatewayConfig) -> TokenVerifier:
    """For one-shot CLIs: verifies tokens as the admin API does (static and gateway
    tokens, revocations applied). The store stays open until the process ends."""
    return trust_over(config, TokenStore.open(token_store_dir(config))).authenticator
