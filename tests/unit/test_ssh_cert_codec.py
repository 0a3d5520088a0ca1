"""SSH user certificates carrying a gateway identity: what hoopd's CA issues, what it
accepts back, and that nothing else (any bytes at all) gets past it or raises
anything but :class:`CertificateError`."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import Reader, public_key_blob, string, uint32, uint64
from hoopd.tokens.ssh_ca import SshCertificateAuthority
from hoopd.tokens.ssh_cert import (
    CA_ALGORITHM,
    IDENTITY_EXTENSION,
    CertificateError,
    ca_public_blob,
    certified_identity,
    read_certificate,
    user_certificate,
)

ISSUER = "hoopd"
NOW = 1_800_000_000.0
CA = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_CA = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CA_BLOB = ca_public_blob(CA.public_key())
# An ed25519 user key (any 32 bytes do for the codec: it never uses them).
KEY = string("ssh-ed25519") + string(b"\x07" * 32)
IDENTITY = Identity(
    subject="alice",
    groups=("dev", "oncall"),
    token_id="gt:ABCDEFGHIJKLMNOPQRSTUVWX",
    actor_chain=("ci-job", "sub-agent"),
    scope=("web:write", "db-*:read"),
    expires_at=NOW + 600,
    issuer="hoopd",
    lineage=("st:0123456789ab", "gt:parentparentparentpa"),
    issued_at=NOW,
)


def issued(identity: Identity = IDENTITY, ca: Ed25519PrivateKey = CA) -> bytes:
    return user_certificate(ca, KEY, identity, ISSUER, serial=42)


def test_the_identity_comes_back_exactly() -> None:
    blob = issued()
    assert certified_identity(blob, CA_BLOB, ISSUER, NOW + 1) == IDENTITY
    cert = read_certificate(blob)
    assert cert.key == KEY and cert.key_id == IDENTITY.token_id and cert.serial == 42
    assert cert.principals == () and cert.critical_options == {}
    assert cert.valid_before == NOW + 600 and cert.valid_after <= NOW
    assert set(cert.extensions) >= {IDENTITY_EXTENSION, "permit-pty", "permit-port-forwarding"}


@pytest.mark.parametrize(
    ("moment", "why"),
    [(NOW + 600, "validity window"), (NOW + 10_000, "validity window"), (NOW - 3600, "window")],
)
def test_outside_its_window_it_is_refused(moment: float, why: str) -> None:
    with pytest.raises(CertificateError, match=why):
        certified_identity(issued(), CA_BLOB, ISSUER, moment)


def test_another_ca_or_issuer_is_refused() -> None:
    with pytest.raises(CertificateError, match="not signed by this gateway's CA"):
        certified_identity(issued(ca=OTHER_CA), CA_BLOB, ISSUER, NOW)
    with pytest.raises(CertificateError, match="another issuer"):
        certified_identity(issued(), CA_BLOB, "elsewhere", NOW)


def test_a_signature_key_swapped_in_does_not_verify() -> None:
    # The CA's public key written into a certificate another key signed.
    forged = issued(ca=OTHER_CA).replace(ca_public_blob(OTHER_CA.public_key()), CA_BLOB)
    with pytest.raises(CertificateError, match="signature"):
        certified_identity(forged, CA_BLOB, ISSUER, NOW)


@settings(max_examples=300)
@given(st.data())
def test_any_changed_byte_is_refused(data: st.DataObject) -> None:
    blob = bytearray(issued())
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CertificateError):
        certified_identity(bytes(blob), CA_BLOB, ISSUER, NOW)


@settings(max_examples=500)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_certificate_error(blob: bytes) -> None:
    with pytest.raises(CertificateError):
        certified_identity(blob, CA_BLOB, ISSUER, NOW)
    with contextlib.suppress(CertificateError):
        read_certificate(blob)


def _signed(extensions: bytes, critical: bytes = b"", key_id: str = IDENTITY.token_id) -> bytes:
    """A certificate the CA really signed, with these raw extensions."""
    body = b"".join(
        (
            string("ssh-ed25519-cert-v01@openssh.com"),
            string(b"nonce"),
            string(b"\x07" * 32),
            uint64(1),
            uint32(1),
            string(key_id),
            string(b""),
            uint64(int(NOW) - 30),
            uint64(int(NOW) + 600),
            string(critical),
            string(extensions),
            string(b""),
            string(CA_BLOB),
        )
    )
    return body + string(string(CA_ALGORITHM) + string(CA.sign(body)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_signed_but_arbitrary_extensions_raise_only_certificate_error(raw: bytes) -> None:
    for extensions in (raw, string(IDENTITY_EXTENSION) + string(raw)):
        with contextlib.suppress(CertificateError):
            certified_identity(_signed(extensions), CA_BLOB, ISSUER, NOW)


CLAIM_NAMES = ("iss", "aud", "sub", "groups", "scope", "iat", "nbf", "exp", "jti", "act")


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from([*CLAIM_NAMES, "hoopd_lineage"]), json_values))
def test_signed_but_arbitrary_identities_raise_only_certificate_error(
    claims: dict[str, object],
) -> None:
    good = json.loads(_identity_json(issued()))
    for candidate in (claims, {**good, **claims}):
        try:
            text = json.dumps(candidate)
        except ValueError:
            continue
        extension = string(IDENTITY_EXTENSION) + string(string(text))
        try:
            identity = certified_identity(_signed(extension), CA_BLOB, ISSUER, NOW)
        except CertificateError:
            continue
        # Whatever got through says exactly what the CA signed.
        assert identity.token_id == IDENTITY.token_id


def test_critical_options_are_refused() -> None:
    good = read_certificate(issued()).extensions[IDENTITY_EXTENSION]
    extension = string(IDENTITY_EXTENSION) + string(good)
    option = string("force-command") + string(string("true"))
    with pytest.raises(CertificateError, match="critical options"):
        certified_identity(_signed(extension, critical=option), CA_BLOB, ISSUER, NOW)


def _identity_json(blob: bytes) -> str:
    return Reader(read_certificate(blob).extensions[IDENTITY_EXTENSION]).text()


def test_openssh_reads_what_the_ca_writes(tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
        check=True,
        capture_output=True,
    )
    key = public_key_blob((tmp_path / "k.pub").read_text())
    ca = SshCertificateAuthority(tmp_path / "store", ISSUER)
    now = float(int(time.time()))  # a token's times are whole seconds
    identity = Identity(
        "bob", (), "gt:abcdefghijklmnopqrstuv", scope=("web:read",), expires_at=now + 60,
        issuer="hoopd", lineage=("st:0123456789ab",), issued_at=now,
    )  # fmt: skip
    line = ca.certify(key, identity)
    (tmp_path / "k-cert.pub").write_text(line + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(tmp_path / "k-cert.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'Key ID: "gt:abcdefghijklmnopqrstuv"' in listed and "user certificate" in listed
    assert ca.lookup(base64.b64decode(line.split()[1])) == identity
    assert (tmp_path / "store" / "keys" / "ssh_user_ca").stat().st_mode & 0o777 == 0o600
    # A second authority over the same directory uses the same key.
    again = SshCertificateAuthority(tmp_path / "store", ISSUER)
    assert again.public_line() == ca.public_line()
    assert SshCertificateAuthority(tmp_path / "empty", ISSUER).lookup(b"x") is None
