"""SSH public keys bound to an identity: the ``[[ssh_keys]]`` configuration, the
lookup, and the Authenticator's checks of a key's identity (expiry, revocation,
scope), which are the very checks a token's identity passes."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from hoopd.config import ConfigError, config_from_dict
from hoopd.config_identity import SshKeyConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.base import Identity
from hoopd.identity.ssh_keys import KeyBindings, key_token_id
from hoopd.identity.ssh_wire import SshWireError, fingerprint, public_key_blob, string
from hoopd.identity.tokens import StaticTokenVerifier

ED25519 = string("ssh-ed25519") + string(b"\x01" * 32)
OTHER = string("ssh-ed25519") + string(b"\x02" * 32)
RSA = string("ssh-rsa") + string(b"\x01\x00\x01") + string(b"\x00" + b"\xab" * 256)


def line(blob: bytes, comment: str = "someone@laptop") -> str:
    return f"{string_name(blob)} {base64.b64encode(blob).decode()} {comment}"


def string_name(blob: bytes) -> str:
    return blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()


def config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": "state"},
        "ssh_keys": list(entries),
    }


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "identity": "deploy-bot",
        "groups": ["ci"],
        "keys": [line(ED25519), line(RSA)],
        "expires": dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
        "scope": ["web:write"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_binding_is_read_from_the_configuration() -> None:
    cfg = config_from_dict(config(entry()), Path("/etc/hoopd/hoopd.toml"))
    (binding,) = cfg.ssh_keys
    assert binding.identity == "deploy-bot" and binding.groups == ("ci",)
    assert binding.keys == (ED25519, RSA) and binding.scope == ("web:write",)
    assert binding.expires_at == dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"expires": None}, "ssh_keys[0].expires: missing (required: SSH key bindings"),
        ({"keys": []}, "ssh_keys[0].keys: missing (required: at least one"),
        ({"keys": ["ssh-ed25519 not-base64!"]}, "ssh_keys[0].keys[0]: not an OpenSSH public"),
        ({"keys": ["ssh-dss AAAAB3NzaC1kc3MAAAA="]}, "keys[0]: not an OpenSSH public key line"),
        ({"keys": [line(ED25519).replace("ssh-ed25519", "ssh-rsa", 1)]}, "differs from the"),
        ({"scope": ["web"]}, "ssh_keys[0].scope: scope item 'web'"),
        ({"colour": "blue"}, "ssh_keys[0].colour: unknown key"),
    ],
)
def test_a_bad_binding_is_reported_with_its_key(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config(entry(**overrides)), Path("hoopd.toml"))
    assert problem in str(caught.value)


def test_a_key_may_be_bound_once() -> None:
    twice = config(entry(), entry(identity="other", keys=[line(ED25519, "copy")]))
    with pytest.raises(ConfigError, match=r"ssh_keys\[1\]\.keys\[0\]: the same key is bound by"):
        config_from_dict(twice, Path("hoopd.toml"))


def test_lookup_gives_the_bound_identity_until_the_binding_expires() -> None:
    now = [1000.0]
    bindings = KeyBindings(
        [SshKeyConfig("deploy-bot", ("ci",), (ED25519,), 2000.0, ("web:write",))],
        clock=lambda: now[0],
    )
    assert bindings.lookup(ED25519) == Identity(
        subject="deploy-bot",
        groups=("ci",),
        token_id="key:" + fingerprint(ED25519),
        scope=("web:write",),
        expires_at=2000.0,
        issuer="static",
    )
    assert bindings.lookup(OTHER) is None
    now[0] = 2000.0
    assert bindings.lookup(ED25519) is None
    assert bindings.token_ids() == {key_token_id(ED25519)}


def test_the_fingerprint_is_what_openssh_prints() -> None:
    # ssh-keygen -l for this very key line.
    text = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB x"
    assert public_key_blob(text) == ED25519
    assert fingerprint(ED25519).startswith("SHA256:") and "=" not in fingerprint(ED25519)


@given(st.text(max_size=300))
def test_any_text_is_a_key_line_or_an_ssh_wire_error(text: str) -> None:
    with contextlib.suppress(SshWireError):
        public_key_blob(text)


class Revocations:
    """A stand-in for the token store: revokes the subjects it is given."""

    def __init__(self, *subjects: str) -> None:
        self.subjects = set(subjects)

    def revocation_reason(self, identity: Identity) -> str | None:
        return "subject revoked" if identity.subject in self.subjects else None


class Certificates:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.asked: list[bytes] = []

    def lookup(self, blob: bytes) -> Identity | None:
        self.asked.append(blob)
        return self.identity


def authenticator(
    *, revoked: tuple[str, ...] = (), certificates: Certificates | None = None, now: float = 1500
) -> Authenticator:
    return Authenticator(
        StaticTokenVerifier([]),
        gateway_issuer="hoopd",
        revocations=Revocations(*revoked),
        ssh_keys=KeyBindings(
            [SshKeyConfig("deploy-bot", ("ci",), (ED25519,), 2000.0, ("web:write",))],
            clock=lambda: now,
        ),
        ssh_certificates=certificates,
        clock=lambda: now,
    )


def login(auth: Authenticator, blob: bytes, connection: str = "web") -> Any:
    return trio.run(auth.login_with_public_key, blob, connection)


def test_a_bound_key_logs_in_within_its_scope() -> None:
    done = login(authenticator(), ED25519)
    assert done is not None and done.identity.subject == "deploy-bot"
    assert done.granted_level == 1  # write
    assert login(authenticator(), ED25519, "payroll-db") is None
    assert login(authenticator(), OTHER) is None


def test_a_revoked_subject_cannot_log_in_with_a_key() -> None:
    assert login(authenticator(revoked=("deploy-bot",)), ED25519) is None


def test_certificates_go_to_the_ca_and_pass_the_same_checks() -> None:
    cert = string("ssh-ed25519-cert-v01@openssh.com") + b"rest"
    identity = Identity(
        "alice", ("dev",), "gt:x", ("agent",), ("web:read",), expires_at=1600.0, issuer="hoopd"
    )
    certificates = Certificates(identity)
    done = login(authenticator(certificates=certificates), cert)
    assert done is not None and done.identity == identity and done.granted_level == 0
    assert certificates.asked == [cert]
    # The same certificate: revoked subject, expired, or out of scope.
    assert login(authenticator(certificates=certificates, revoked=("alice",)), cert) is None
    assert login(authenticator(certificates=certificates, now=1600.0), cert) is None
    assert login(authenticator(certificates=certificates), cert, "db") is None
    # No CA configured: certificates are refused; keys never reach the CA.
    assert login(authenticator(), cert) is None
    certificates.asked.clear()
    login(authenticator(certificates=certificates), ED25519)
    assert certificates.asked == []


@given(st.binary(max_size=200))
def test_any_blob_is_refused_or_accepted_never_raises(blob: bytes) -> None:
    assert login(authenticator(), blob) is None or blob == ED25519
