"""TLS contexts for the two legs of a session, built on the standard ``ssl`` module
(docs/decisions/0004-stdlib-ssl-for-tls.md says why).

Guarantees:

* Both legs refuse anything older than TLS 1.2.
* The client leg uses the configured certificate, or else a self-signed one that hoopd
  generates once into ``data_dir/tls/`` (key mode 0600, directories 0700) and reuses
  until it expires.
* The target leg follows libpq's ``sslmode`` meanings: ``require`` encrypts without
  verifying anything; ``verify-full`` verifies the chain against ``ca_file`` and the
  name against ``server_name`` (or ``host``). A ``verify-full`` context checks that
  configured name whatever ``server_hostname`` its caller passes, even none.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import re
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hoopd.config import ConfigError, GatewayConfig, TargetConfig

CERT_NAME: Final = "server.crt"
KEY_NAME: Final = "server.key"
CERT_LIFETIME: Final = datetime.timedelta(days=365)
_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """The certificate the client leg presents.

    ``self_signed`` is set when hoopd made it (clients must be given ``cert_file`` to
    trust it); ``generated`` is set when this very call created it.
    """

    cert_file: Path
    key_file: Path
    self_signed: bool
    generated: bool


def client_leg_certificate(cfg: GatewayConfig) -> ServerCertificate:
    """The configured certificate, or the self-signed one, generated if need be.

    A caller that wants to log which certificate is in use (and whether it was just
    generated, so clients must be given the new one) calls this first and hands the
    result to :func:`client_leg_context`. Raises :class:`ConfigError` if it cannot be
    written.
    """
    tls = cfg.client_tls
    if tls.cert_file is not None and tls.key_file is not None:
        return ServerCertificate(tls.cert_file, tls.key_file, self_signed=False, generated=False)
    tls_dir = cfg.data_dir / "tls"
    try:
        generated = _ensure_self_signed(tls_dir)
    except OSError as exc:
        raise ConfigError(
            f"{cfg.source}: gateway.data_dir: cannot create a self-signed certificate in"
            f" {tls_dir}: {_reason(exc)}"
        ) from None
    return ServerCertificate(
        tls_dir / CERT_NAME, tls_dir / KEY_NAME, self_signed=True, generated=generated
    )


def client_leg_context(cfg: GatewayConfig, cert: ServerCertificate | None = None) -> ssl.SSLContext:
    """The server-side context for client connections.

    Raises :class:`ConfigError` if the certificate and key cannot be loaded.
    """
    if cert is None:
        cert = client_leg_certificate(cfg)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Renegotiation only gives a client a way to make us do expensive handshakes.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{cfg.source}: client_tls.cert_file: cannot load {cert.cert_file}"
            f" with key {cert.key_file}: {_reason(exc)}"
        ) from None
    return ctx


def target_leg_context(target: TargetConfig) -> ssl.SSLContext | None:
    """The client-side context for dialing ``target``; ``None`` when ``tls = "disable"``.

    Built afresh on each call, so a replaced ``ca_file`` takes effect on the next dial.
    Raises :class:`ConfigError` if ``ca_file`` cannot be loaded.
    """
    if target.tls == "disable":
        return None
    if target.tls == "require":
        # Like libpq's sslmode=require: protects against passive eavesdropping only.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if target.ca_file is None:
        raise ConfigError('target.ca_file: required when tls = "verify-full"')
    pinned = _NamePinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    pinned.pinned_hostname = target.server_name or target.host
    pinned.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        pinned.load_verify_locations(cafile=target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"target.ca_file: cannot load CA certificates from {target.ca_file}: {_reason(exc)}"
        ) from None
    return pinned  # PROTOCOL_TLS_CLIENT defaults: CERT_REQUIRED and check_hostname


class _NamePinnedContext(ssl.SSLContext):
    """A client context that always checks one name.

    ``wrap_bio`` (what trio uses) skips the hostname check entirely when given no
    ``server_hostname``; pinning the name here means a caller cannot forget it.
    """

    pinned_hostname: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.pinned_hostname, session)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.pinned_hostname,
            session,
        )


def target_server_hostname(target: TargetConfig) -> str | None:
    """The name to pass as ``server_hostname``: sent as SNI, and checked by ``verify-full``."""
    if target.tls == "disable":
        return None
    return target.server_name or target.host


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def _ensure_self_signed(tls_dir: Path) -> bool:
    """Make sure ``tls_dir`` holds a usable key and self-signed certificate.

    Returns whether they were (re)generated, which happens when either file is missing
    or the certificate has expired. A lock keeps two processes starting at once from
    each writing half of a pair.
    """
    if _usable(tls_dir):
        return False  # the common case needs no write access at all
    _make_private_dir(tls_dir)
    with open(tls_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(tls_dir):
            return False
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_pem = _self_signed(key).public_bytes(serialization.Encoding.PEM)
        _write_atomically(tls_dir / KEY_NAME, key_pem, 0o600)
        _write_atomically(tls_dir / CERT_NAME, cert_pem, 0o644)
        return True


def _make_private_dir(path: Path) -> None:
    # mkdir(parents=True) would create the parents with default permissions.
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            directory.mkdir(mode=0o700, exist_ok=True)


def _usable(tls_dir: Path) -> bool:
    if not (tls_dir / KEY_NAME).is_file():
        return False
    try:
        cert = x509.load_pem_x509_certificate((tls_dir / CERT_NAME).read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    hostname = socket.gethostname()
    dns_names = ["localhost"]
    if hostname != "localhost" and _HOSTNAME_RE.fullmatch(hostname):
        dns_names.append(hostname)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"hoopd self-signed ({dns_names[-1]})"[:64])]
    )
    # Backdated a little so a client whose clock runs slow still accepts it.
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
