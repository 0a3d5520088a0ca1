"""The identity parts of the configuration: static token expiry and scope,
``[[ssh_keys]]`` (SSH public keys bound to an identity), ``[identity]`` (the
gateway's own tokens and SSH certificates) and ``[[oidc.issuers]]``.

Parsed by :func:`hoopd.config.config_from_dict` with the same guarantees as the rest
of the file: every problem is reported with its key, unknown keys are refused.
docs/configuration.md documents every key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from hoopd.identity.scope import ScopeError, parse_scope
from hoopd.identity.ssh_wire import SshWireError, public_key_blob

if TYPE_CHECKING:
    from hoopd.config_table import Table

SIGNING_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256")
"""Asymmetric algorithms an OIDC issuer may be trusted for. HS* (shared secrets)
and ``none`` are never accepted, so a public key can never be used as an HMAC key."""


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """``[identity]``: the tokens hoopd signs itself.

    ``issuer`` is their ``iss`` and ``aud``; ``default_ttl_seconds`` is the lifetime
    of a minted token when none is asked for, ``max_ttl_seconds`` the most any may
    have; ``max_chain_depth`` bounds delegation (exchanges from a root token);
    ``store_dir`` holds the token and revocation store that gateways sharing it
    see alike (default: the approvals store directory, else the data directory).
    ``end_sessions_at_expiry`` ends a live session when its token expires.
    ``ssh_certificate_max_ttl_seconds`` is the longest an SSH certificate hoopd's
    CA issues for a token may be valid (never past the token's own expiry).
    """

    issuer: str = "hoopd"
    default_ttl_seconds: int = 900
    max_ttl_seconds: int = 12 * 3600
    max_chain_depth: int = 3
    store_dir: Path | None = None
    end_sessions_at_expiry: bool = True
    ssh_certificate_max_ttl_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class SshKeyConfig:
    """``[[ssh_keys]]``: OpenSSH public keys that log in as ``identity`` (with
    ``groups``), until ``expires_at`` (Unix seconds), within ``scope`` (None:
    unrestricted), exactly like a static token. ``keys`` holds each key's wire blob."""

    identity: str
    groups: tuple[str, ...]
    keys: tuple[bytes, ...]
    expires_at: float
    scope: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class OidcIssuerConfig:
    """One trusted OpenID Connect issuer.

    ``issuer`` is its URL exactly as in its tokens' ``iss`` (the discovery document
    is read from ``<issuer>/.well-known/openid-configuration``); ``audience`` is the
    ``aud`` its tokens must carry for hoopd. ``scope`` is the most that a gateway
    token minted for one of its identities may carry; ``group_scopes`` adds items
    for members of a group. ``accept_on`` names connections where a client may
    present the issuer's access token itself instead of a gateway token.
    ``client_id`` is the public client ``hoopd login`` uses for the device flow.
    """

    name: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    scope: tuple[str, ...] = ()
    group_scopes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    accept_on: tuple[str, ...] = ()
    client_id: str | None = None
    ca_file: Path | None = None
    jwks_min_refresh_seconds: float = 30.0
    jwks_max_age_seconds: float = 3600.0


def token_expiry(t: Table, what: str = "static tokens are for bootstrapping and") -> float:
    """``expires``: an offset date-time (Unix seconds); required. ``what`` starts
    the reason given when it is missing or malformed."""
    if not t.present("expires"):
        t.problem("expires", f"missing (required: {what} expire)")
        return 0.0
    value = t.raw("expires")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.timestamp()
    t.problem(
        "expires",
        f"must be an offset date-time such as 2027-01-31T00:00:00Z ({what} must expire)",
    )
    return 0.0


def token_scope(t: Table) -> tuple[str, ...] | None:
    """``scope``: optional list of ``connection:action`` items (None: unrestricted)."""
    if not t.present("scope"):
        return None
    return checked_scope(t, "scope")


def checked_scope(t: Table, name: str) -> tuple[str, ...]:
    items = t.text_list(name)
    try:
        parse_scope(items)
    except ScopeError as exc:
        t.problem(name, str(exc))
    return items


def identity_section(t: Table) -> IdentityConfig:
    issuer = t.optional_text("issuer") or "hoopd"
    default_ttl = t.integer("default_ttl_seconds", 900, 1, None)
    max_ttl = t.integer("max_ttl_seconds", 12 * 3600, 1, None)
    depth = t.integer("max_chain_depth", 3, 0, 16)
    store_dir = t.path("store_dir")
    end_at_expiry = t.boolean("end_sessions_at_expiry", True)
    cert_ttl = t.integer("ssh_certificate_max_ttl_seconds", 3600, 1, None)
    t.done()
    if default_ttl > max_ttl:
        t.problem("default_ttl_seconds", f"must not exceed max_ttl_seconds ({max_ttl})")
    return IdentityConfig(issuer, default_ttl, max_ttl, depth, store_dir, end_at_expiry, cert_ttl)


def ssh_key_bindings(tables: list[Table]) -> tuple[SshKeyConfig, ...]:
    """``[[ssh_keys]]``; a key may be bound once only, across every entry."""
    bindings: list[SshKeyConfig] = []
    seen: dict[bytes, int] = {}
    for i, t in enumerate(tables):
        identity = t.text("identity")
        groups = t.text_list("groups")
        lines = t.text_list("keys")
        if not lines and "keys" not in t.failed:
            t.problem("keys", "missing (required: at least one OpenSSH public key line)")
        keys: list[bytes] = []
        for n, line in enumerate(lines):
            try:
                blob = public_key_blob(line)
            except SshWireError as exc:
                t.problem(f"keys[{n}]", f"not an OpenSSH public key line: {exc}")
                continue
            if blob in seen:
                t.problem(f"keys[{n}]", f"the same key is bound by ssh_keys[{seen[blob]}]")
            seen.setdefault(blob, i)
            keys.append(blob)
        expires_at = token_expiry(t, "SSH key bindings, like static tokens,")
        scope = token_scope(t)
        t.done()
        bindings.append(SshKeyConfig(identity, groups, tuple(keys), expires_at, scope))
    return tuple(bindings)


def oidc_issuers(t: Table) -> tuple[OidcIssuerConfig, ...]:
    issuers = [_issuer(i) for i in t.tables("issuers")]
    t.done()
    names: set[str] = set()
    urls: set[str] = set()
    for i, issuer in enumerate(issuers):
        if issuer.name in names:
            t.problem(f"issuers[{i}].name", f"{issuer.name!r} is used twice")
        if issuer.issuer in urls:
            t.problem(f"issuers[{i}].issuer", f"{issuer.issuer!r} is configured twice")
        names.add(issuer.name)
        urls.add(issuer.issuer)
    return tuple(issuers)


def _issuer(t: Table) -> OidcIssuerConfig:
    name = t.text("name")
    url = t.text("issuer", check=_check_issuer_url)
    audience = t.text("audience")
    algorithms = t.text_list("algorithms") or ("RS256", "ES256")
    for algorithm in algorithms:
        if algorithm not in SIGNING_ALGORITHMS:
            t.problem(
                "algorithms",
                f"{algorithm!r} is not accepted (use: {', '.join(SIGNING_ALGORITHMS)})",
            )
    subject_claim = t.optional_text("subject_claim") or "sub"
    groups_claim = t.optional_text("groups_claim") or "groups"
    scope = checked_scope(t, "scope")
    group_scopes = _group_scopes(t.table("group_scopes"))
    accept_on = t.text_list("accept_on")
    client_id = t.optional_text("client_id")
    ca_file = t.path("ca_file")
    min_refresh = t.number("jwks_min_refresh_seconds", 30.0)
    max_age = t.number("jwks_max_age_seconds", 3600.0)
    if max_age <= min_refresh:
        t.problem("jwks_max_age_seconds", "must be longer than jwks_min_refresh_seconds")
    t.done()
    return OidcIssuerConfig(
        name=name,
        issuer=url,
        audience=audience,
        algorithms=algorithms,
        subject_claim=subject_claim,
        groups_claim=groups_claim,
        scope=scope,
        group_scopes=group_scopes,
        accept_on=accept_on,
        client_id=client_id,
        ca_file=ca_file,
        jwks_min_refresh_seconds=min_refresh,
        jwks_max_age_seconds=max_age,
    )


def _group_scopes(t: Table) -> Mapping[str, tuple[str, ...]]:
    scopes = {group: checked_scope(t, group) for group in list(t.data)}
    t.done()
    return MappingProxyType(scopes)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (no name lookup)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_issuer_url(value: str) -> str | None:
    """https, or http on a loopback host (a test provider on this machine)."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        if is_loopback_host(parts.hostname):
            return None
        return "http is only accepted for a loopback issuer; use https"
    return "must be an https URL (or http on a loopback address)"
