"""TLS on both legs, checked with real handshakes over in-memory streams."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hoopd.config import ConfigError, GatewayConfig, SecretRef, TargetConfig, config_from_dict
from hoopd.tlsconfig import (
    client_leg_certificate,
    client_leg_context,
    target_leg_context,
    target_server_hostname,
)


def gateway_config(tmp_path: Path, client_tls: dict[str, Any] | None = None) -> GatewayConfig:
    data: dict[str, Any] = {"gateway": {"data_dir": "data"}}
    if client_tls is not None:
        data["client_tls"] = client_tls
    return config_from_dict(data, tmp_path / "hoopd.toml")


def target(tls: str, host: str = "db.internal", **extra: Any) -> TargetConfig:
    return TargetConfig(host, 5432, "app", "app", SecretRef(env="X"), tls, **extra)  # type: ignore[arg-type]


async def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str | None
) -> BaseException | None:
    """Run a TLS handshake and an echo; return the client's error, or None on success."""
    client_raw, server_raw = trio.testing.memory_stream_pair()
    server = trio.SSLStream(server_raw, server_ctx, server_side=True)
    client = trio.SSLStream(client_raw, client_ctx, server_hostname=server_hostname)
    failure: BaseException | None = None

    async def serve() -> None:
        try:
            await server.do_handshake()
            await server.send_all((await server.receive_some(100)).upper())
        except trio.BrokenResourceError:
            await trio.aclose_forcefully(server)

    async def use() -> None:
        nonlocal failure
        try:
            await client.do_handshake()
            await client.send_all(b"ping")
            assert await client.receive_some(100) == b"PING"
        except trio.BrokenResourceError as exc:
            failure = exc.__cause__ or exc
            await trio.aclose_forcefully(client)  # lets the server side see the end

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(use)
    return failure


def trusting(cert_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_file))


# --- client leg --------------------------------------------------------------------


def test_first_run_generates_a_private_key_and_certificate_then_reuses_them(
    tmp_path: Path,
) -> None:
    cfg = gateway_config(tmp_path)

    first = client_leg_certificate(cfg)
    assert first.self_signed and first.generated
    assert first.cert_file == tmp_path / "data" / "tls" / "server.crt"
    assert first.key_file == tmp_path / "data" / "tls" / "server.key"
    assert stat.S_IMODE(first.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "tls").stat().st_mode) == 0o700
    cert_bytes, key_bytes = first.cert_file.read_bytes(), first.key_file.read_bytes()

    client_leg_context(cfg)  # a later start
    second = client_leg_certificate(cfg)

    assert not second.generated
    assert second.cert_file.read_bytes() == cert_bytes
    assert second.key_file.read_bytes() == key_bytes


def test_generated_certificate_names_the_local_host_for_about_a_year(tmp_path: Path) -> None:
    cert_file = client_leg_certificate(gateway_config(tmp_path)).cert_file
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert set(san.get_values_for_type(x509.IPAddress)) >= {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=360) < lifetime < datetime.timedelta(days=370)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_an_expired_generated_certificate_is_replaced(tmp_path: Path) -> None:
    cfg = gateway_config(tmp_path)
    first = client_leg_certificate(cfg)
    key = serialization.load_pem_private_key(first.key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")])
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(past)
        .not_valid_after(past + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    first.cert_file.write_bytes(expired.public_bytes(serialization.Encoding.PEM))

    again = client_leg_certificate(cfg)

    assert again.generated
    renewed = x509.load_pem_x509_certificate(again.cert_file.read_bytes())
    assert renewed.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1"])
async def test_clients_trusting_the_generated_certificate_can_connect(
    tmp_path: Path, name: str
) -> None:
    cfg = gateway_config(tmp_path)
    cert = client_leg_certificate(cfg)
    client_ctx = trusting(cert.cert_file)
    # What newer Pythons turn on by default; the certificate must satisfy it too.
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT

    assert await handshake(client_leg_context(cfg, cert), client_ctx, name) is None


async def test_configured_certificate_is_used(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("gateway.example.com")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    cfg = gateway_config(tmp_path, {"cert_file": "tls.crt", "key_file": "tls.key"})
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    assert await handshake(client_leg_context(cfg), client_ctx, "gateway.example.com") is None
    assert not (tmp_path / "data").exists()  # nothing generated


def test_an_unloadable_configured_certificate_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    cfg = gateway_config(tmp_path, {"cert_file": "tls.crt", "key_file": "tls.key"})

    with pytest.raises(ConfigError, match=r"hoopd\.toml: client_tls\.cert_file: cannot load"):
        client_leg_context(cfg)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_client_leg_refuses_tls_below_1_2(tmp_path: Path) -> None:
    cfg = gateway_config(tmp_path)
    cert = client_leg_certificate(cfg)
    old_client = trusting(cert.cert_file)
    old_client.minimum_version = ssl.TLSVersion.TLSv1
    old_client.maximum_version = ssl.TLSVersion.TLSv1_1
    old_client.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that only the server can refuse

    failure = await handshake(client_leg_context(cfg, cert), old_client, "localhost")

    assert isinstance(failure, ssl.SSLError)


# --- target leg --------------------------------------------------------------------


@pytest.fixture
def db_ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "db-ca.pem"))
    return ca, tmp_path / "db-ca.pem"


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def test_disable_means_no_tls() -> None:
    assert target_leg_context(target("disable")) is None
    assert target_server_hostname(target("disable")) is None


async def test_verify_full_accepts_the_right_name(db_ca: tuple[trustme.CA, Path]) -> None:
    ca, ca_file = db_ca
    t = target("verify-full", ca_file=ca_file)
    ctx = target_leg_context(t)
    assert ctx is not None

    assert (
        await handshake(server_context(ca, "db.internal"), ctx, target_server_hostname(t)) is None
    )


async def test_verify_full_rejects_a_certificate_for_another_name(
    db_ca: tuple[trustme.CA, Path],
) -> None:
    ca, ca_file = db_ca
    t = target("verify-full", ca_file=ca_file)
    ctx = target_leg_context(t)
    assert ctx is not None

    failure = await handshake(server_context(ca, "other.internal"), ctx, target_server_hostname(t))

    assert isinstance(failure, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in failure.verify_message


async def test_verify_full_checks_server_name_instead_of_host(
    db_ca: tuple[trustme.CA, Path],
) -> None:
    ca, ca_file = db_ca
    t = target("verify-full", host="10.0.0.7", ca_file=ca_file, server_name="db.internal")
    ctx = target_leg_context(t)
    assert ctx is not None and target_server_hostname(t) == "db.internal"

    assert await handshake(server_context(ca, "db.internal"), ctx, "db.internal") is None


async def test_verify_full_rejects_a_certificate_from_another_ca(
    db_ca: tuple[trustme.CA, Path],
) -> None:
    _, ca_file = db_ca
    t = target("verify-full", ca_file=ca_file)
    ctx = target_leg_context(t)
    assert ctx is not None

    failure = await handshake(server_context(trustme.CA(), "db.internal"), ctx, "db.internal")

    assert isinstance(failure, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("passed_name", [None, "other.internal"])
async def test_verify_full_checks_the_configured_name_whatever_the_caller_passes(
    db_ca: tuple[trustme.CA, Path], passed_name: str | None
) -> None:
    ca, ca_file = db_ca
    ctx = target_leg_context(target("verify-full", ca_file=ca_file))
    assert ctx is not None

    wrong = await handshake(server_context(ca, "other.internal"), ctx, passed_name)
    right = await handshake(server_context(ca, "db.internal"), ctx, passed_name)

    assert isinstance(wrong, ssl.SSLCertVerificationError)
    assert right is None


async def test_require_accepts_a_self_signed_certificate_for_any_name(tmp_path: Path) -> None:
    cfg = gateway_config(tmp_path)
    t = target("require", host="db.internal")
    ctx = target_leg_context(t)
    assert ctx is not None

    assert await handshake(client_leg_context(cfg), ctx, target_server_hostname(t)) is None


def test_unloadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("")

    for ca_file in (tmp_path / "empty.pem", tmp_path / "absent.pem"):
        with pytest.raises(ConfigError, match=r"target\.ca_file: cannot load CA certificates"):
            target_leg_context(target("verify-full", ca_file=ca_file))
