"""Coverage-guided fuzzing of the SSH certificate and public-key readers with atheris.

What a client presents as its key at an SSH login reaches these readers before
anything else is known about it, so every input is tried three ways: as a
certificate to check against a fixed CA (:func:`certified_identity`), as a
certificate to decode (:func:`read_certificate`), and as a plain key blob
(:func:`key_fields`, :func:`key_algorithm`, :func:`fingerprint`). The first bytes
may also be read as a CA-signed body, so inputs get past the signature check too:
the harness signs ``body`` with its CA, exactly as the gateway's CA would.

Anything escaping other than ``CertificateError`` / ``SshWireError`` is a bug, and
so is any identity accepted from bytes the CA did not sign.

    python fuzz/fuzz_ssh_cert.py -max_total_time=60 fuzz/corpus-ssh-cert
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hoopd.identity.ssh_wire import SshWireError, fingerprint, key_algorithm, key_fields
    from hoopd.identity.ssh_wire import string as ssh_string
    from hoopd.tokens.ssh_cert import (
        CA_ALGORITHM,
        CertificateError,
        ca_public_blob,
        certified_identity,
        read_certificate,
    )

_CA = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_CA_BLOB = ca_public_blob(_CA.public_key())
_ISSUER = "hoopd"
_NOW = 1_800_000_000.0


def _signed(body: bytes) -> bytes:
    """``body`` followed by the CA blob and the CA's signature over both, the way a
    certificate ends: bytes that get past the signature check."""
    signed = body + ssh_string(_CA_BLOB)
    return signed + ssh_string(ssh_string(CA_ALGORITHM) + ssh_string(_CA.sign(signed)))


def test_one_input(data: bytes) -> None:
    for blob in (data, _signed(data)):
        try:
            identity = certified_identity(blob, _CA_BLOB, _ISSUER, _NOW)
        except CertificateError:
            pass
        else:
            # Only bytes the CA signed may ever yield an identity.
            assert blob is not data, "an unsigned input was accepted"
            assert identity.token_id, "an accepted identity has no token id"
        with contextlib.suppress(CertificateError):
            read_certificate(blob)
    with contextlib.suppress(SshWireError):
        key_fields(data)
        key_algorithm(data)
        fingerprint(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
