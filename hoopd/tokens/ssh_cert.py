"""OpenSSH user certificates (PROTOCOL.certkeys, ``*-cert-v01@openssh.com``) that
hoopd's CA signs with ed25519, carrying a gateway identity.

The identity travels in the extension :data:`IDENTITY_EXTENSION`: a JSON object
with exactly a gateway token's claims (:mod:`hoopd.tokens.claims`): subject, groups,
scope, actor chain (``act``), lineage, ``jti``, ``iat`` and ``exp``. The CA's
signature covers it, so the gateway trusts it as it trusts a token's claims; no
bearer secret is inside. The key id is the identity's token id (``gt:...``), the
certificate is valid from ``iat`` (less the clock leeway) until ``exp``, names no
principals (the SSH user name selects the connection; the scope decides) and
carries no critical options, and OpenSSH's usual ``permit-*`` extensions (what a
session may do is the gateway's policy, not the certificate's).

Guarantees: :func:`certified_identity` returns an identity only for a user
certificate of a supported key type, signed by exactly the given CA key, inside
its validity window, whose key id, expiry and identity agree; for any other input
(any bytes at all) it raises :class:`CertificateError` and nothing else.
:func:`read_certificate` likewise raises only :class:`CertificateError`.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import (
    KEY_FIELDS,
    MAX_BLOB_BYTES,
    Reader,
    SshWireError,
    key_fields,
    string,
    uint32,
    uint64,
)
from hoopd.tokens.claims import ClaimsError, claims_for, identity_from_claims
from hoopd.tokens.keys import CLOCK_LEEWAY_SECONDS

IDENTITY_EXTENSION: Final = "identity@hoopd"
USER_CERT: Final = 1
CA_ALGORITHM: Final = "ssh-ed25519"
PERMITS: Final = (
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
)
"""The extensions ``ssh-keygen`` gives a user certificate by default."""

CERT_ALGORITHMS: Final[dict[str, str]] = {
    key: (
        key.replace("@openssh.com", "-cert-v01@openssh.com")
        if key.endswith("@openssh.com")
        else key + "-cert-v01@openssh.com"
    )
    for key in KEY_FIELDS
}
"""Each supported key type's certificate type."""
_KEY_ALGORITHMS: Final = {cert: key for key, cert in CERT_ALGORITHMS.items()}
_MAX_CERT_BYTES: Final = MAX_BLOB_BYTES * 2


class CertificateError(ValueError):
    """Not a certificate hoopd accepts; the message says why (no identity data)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """A decoded OpenSSH certificate (its signature not yet checked against a CA).

    ``key`` is the certified public key's blob; ``signed`` the bytes the CA signed;
    ``extensions`` and ``critical_options`` map names to their raw data.
    """

    algorithm: str
    key: bytes
    serial: int
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: Mapping[str, bytes]
    extensions: Mapping[str, bytes]
    signature_key: bytes
    signed: bytes
    signature: bytes


def ca_public_blob(ca: Ed25519PublicKey) -> bytes:
    """The wire blob of an ed25519 CA public key."""
    raw = ca.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return string(CA_ALGORITHM) + string(raw)


def user_certificate(
    ca: Ed25519PrivateKey, key: bytes, identity: Identity, issuer: str, serial: int
) -> bytes:
    """The blob of a user certificate for public key ``key`` (a blob) carrying
    ``identity`` as a gateway token issued by ``issuer`` would.

    Raises CertificateError for a key type it cannot certify, and ClaimsError for an
    identity that cannot be a gateway token.
    """
    try:
        key_algorithm, fields = key_fields(key)
    except SshWireError as exc:
        raise CertificateError(f"cannot certify this key: {exc}") from None
    claims = claims_for(identity, issuer)
    extensions = {IDENTITY_EXTENSION: string(json.dumps(claims, sort_keys=True))}
    extensions.update({name: b"" for name in PERMITS})
    body = b"".join(
        (
            string(CERT_ALGORITHMS[key_algorithm]),
            string(secrets.token_bytes(32)),  # nonce
            fields,
            uint64(serial),
            uint32(USER_CERT),
            string(identity.token_id),
            string(b""),  # principals: none (the scope decides what it reaches)
            uint64(max(0, claims["nbf"] - CLOCK_LEEWAY_SECONDS)),
            uint64(claims["exp"]),
            string(b""),  # critical options: none
            # PROTOCOL.certkeys: extensions appear in lexical order of their names.
            string(b"".join(string(n) + string(extensions[n]) for n in sorted(extensions))),
            string(b""),  # reserved
            string(ca_public_blob(ca.public_key())),
        )
    )
    return body + string(string(CA_ALGORITHM) + string(ca.sign(body)))


def read_certificate(blob: bytes) -> Certificate:
    """Decode an OpenSSH certificate of a supported key type; raises CertificateError."""
    if not isinstance(blob, bytes) or len(blob) > _MAX_CERT_BYTES:
        raise CertificateError("not a certificate of a reasonable size")
    try:
        return _read(blob)
    except SshWireError as exc:
        raise CertificateError(f"malformed certificate: {exc}") from None


def certified_identity(blob: bytes, ca: bytes, issuer: str, now: float) -> Identity:
    """The identity a certificate signed by CA key ``ca`` (a blob) carries, for
    tokens of ``issuer``, checked at ``now``; raises CertificateError."""
    cert = read_certificate(blob)
    if cert.signature_key != ca:
        raise CertificateError("not signed by this gateway's CA")
    _verify(cert)
    if cert.cert_type != USER_CERT:
        raise CertificateError("not a user certificate")
    if not cert.valid_after <= now < cert.valid_before:
        raise CertificateError("outside its validity window")
    if cert.critical_options:
        raise CertificateError("carries critical options this gateway does not know")
    claims = _claims(cert)
    if claims.get("iss") != issuer or claims.get("aud") != issuer:
        raise CertificateError("its identity was issued for another issuer")
    try:
        identity = identity_from_claims(claims)
    except ClaimsError as exc:
        raise CertificateError(f"its identity is malformed: {exc}") from None
    except (ValueError, OverflowError):  # a number too large for a float, say
        raise CertificateError("its identity is malformed") from None
    if cert.key_id != identity.token_id:
        raise CertificateError("its key id is not its identity's token id")
    if identity.expires_at is None or cert.valid_before != math.floor(identity.expires_at):
        raise CertificateError("its validity does not end when its identity expires")
    return identity


def _read(blob: bytes) -> Certificate:
    reader = Reader(blob)
    algorithm = reader.text()
    key_algorithm = _KEY_ALGORITHMS.get(algorithm)
    if key_algorithm is None:
        raise CertificateError("not a certificate of a supported key type")
    reader.string()  # nonce
    key = string(key_algorithm) + b"".join(
        string(reader.string()) for _ in range(KEY_FIELDS[key_algorithm])
    )
    serial = reader.uint64()
    cert_type = reader.uint32()
    key_id = reader.text()
    principals = _names(reader.string())
    valid_after = reader.uint64()
    valid_before = reader.uint64()
    critical = _options(reader.string())
    extensions = _options(reader.string())
    reader.string()  # reserved
    signature_key = reader.string()
    signed = reader.consumed()
    signature = reader.string()
    reader.end()
    return Certificate(
        algorithm,
        key,
        serial,
        cert_type,
        key_id,
        principals,
        valid_after,
        valid_before,
        critical,
        extensions,
        signature_key,
        signed,
        signature,
    )


def _names(data: bytes) -> tuple[str, ...]:
    reader = Reader(data)
    names: list[str] = []
    while not reader.done():
        names.append(reader.text())
    return tuple(names)


def _options(data: bytes) -> dict[str, bytes]:
    """Critical options or extensions: (name, data) pairs, names unique."""
    reader = Reader(data)
    options: dict[str, bytes] = {}
    while not reader.done():
        name = reader.text()
        if name in options:
            raise CertificateError("an option or extension appears twice")
        options[name] = reader.string()
    return options


def _verify(cert: Certificate) -> None:
    try:
        ca = Reader(cert.signature_key)
        ca_algorithm, ca_key = ca.text(), ca.string()
        ca.end()
        signature = Reader(cert.signature)
        signature_algorithm, raw = signature.text(), signature.string()
        signature.end()
    except SshWireError as exc:
        raise CertificateError(f"malformed CA key or signature: {exc}") from None
    if ca_algorithm != CA_ALGORITHM or signature_algorithm != CA_ALGORITHM:
        raise CertificateError("the CA key or its signature is not ed25519")
    try:
        Ed25519PublicKey.from_public_bytes(ca_key).verify(raw, cert.signed)
    except (InvalidSignature, ValueError):
        raise CertificateError("the CA's signature does not verify") from None


def _claims(cert: Certificate) -> dict[str, Any]:
    data = cert.extensions.get(IDENTITY_EXTENSION)
    if data is None:
        raise CertificateError("carries no hoopd identity")
    try:
        inner = Reader(data)
        text = inner.text()
        inner.end()
        claims = json.loads(text)
    except (SshWireError, ValueError, RecursionError):
        raise CertificateError("its identity is not a JSON object") from None
    if not isinstance(claims, dict):
        raise CertificateError("its identity is not a JSON object")
    return claims
