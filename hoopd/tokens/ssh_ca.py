"""hoopd's SSH user certificate authority: one ed25519 key beside the token signing
keys, ``<token store>/keys/ssh_user_ca`` (OpenSSH private key format, mode 0600).

Guarantees:

* The key is created on first use (the first certificate issued) and never
  replaced: it is written under a temporary name and linked into place, which fails
  if the file exists, so of two processes creating it at once one wins and both use
  its key. Gateways sharing the token store share the CA.
* :meth:`SshCertificateAuthority.lookup` never raises: a certificate it cannot
  verify (or a CA that does not exist yet, or cannot be read) gives None, with the
  reason in the log (never the certificate's contents).
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import key_algorithm
from hoopd.private_file import publish_once
from hoopd.tokens.keys import KEYS_DIRNAME, KeyStoreError
from hoopd.tokens.ssh_cert import (
    CertificateError,
    ca_public_blob,
    certified_identity,
    user_certificate,
)

CA_FILENAME: Final = "ssh_user_ca"
_MAX_KEY_FILE_BYTES: Final = 64 * 1024

log = logging.getLogger("hoopd.tokens")


class SshCertificateAuthority:
    """The CA key in ``<store_dir>/keys/``; certificates carry tokens of ``issuer``.

    :meth:`certify` and :meth:`public_line` raise :class:`KeyStoreError` when the
    key cannot be created or read.
    """

    def __init__(
        self, store_dir: Path, issuer: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = store_dir / KEYS_DIRNAME / CA_FILENAME
        self._issuer = issuer
        self._clock = clock
        self._key: Ed25519PrivateKey | None = None

    def certify(self, key: bytes, identity: Identity) -> str:
        """An OpenSSH certificate line (``TYPE BASE64 TOKEN_ID``) for public key blob
        ``key``, carrying ``identity``. Raises CertificateError for a key type that
        cannot be certified, KeyStoreError when the CA is unusable."""
        blob = user_certificate(self._created(), key, identity, self._issuer, secrets.randbits(64))
        algorithm = key_algorithm(blob)
        return f"{algorithm} {base64.b64encode(blob).decode('ascii')} {identity.token_id}"

    def public_line(self) -> str:
        """The CA's public key as an OpenSSH public key line."""
        public = self._created().public_key()
        line = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return line.decode("ascii") + " hoopd-ssh-user-ca"

    def lookup(self, blob: bytes) -> Identity | None:
        """The identity certificate ``blob`` carries, if this CA signed it and it is
        valid now; None otherwise. Revocation and scope are the caller's checks."""
        try:
            key = self._existing()
        except KeyStoreError as exc:
            log.error("SSH certificate refused: the CA key is unusable: %s", exc)
            return None
        if key is None:
            log.info("SSH certificate refused: this gateway has issued none yet (no CA key)")
            return None
        try:
            return certified_identity(
                blob, ca_public_blob(key.public_key()), self._issuer, self._clock()
            )
        except CertificateError as exc:
            log.info("SSH certificate refused: %s", exc)
            return None

    def _existing(self) -> Ed25519PrivateKey | None:
        # The key never changes once it exists, so it is read once; its absence is
        # not remembered (another process may create it any time).
        if self._key is None:
            self._key = self._load()
        return self._key

    def _created(self) -> Ed25519PrivateKey:
        key = self._existing()
        if key is None:
            self._create()
            key = self._existing()
        if key is None:
            raise KeyStoreError(f"the SSH CA key {self.path} vanished after it was created")
        return key

    def _load(self) -> Ed25519PrivateKey | None:
        try:
            with self.path.open("rb") as f:
                data = f.read(_MAX_KEY_FILE_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read the SSH CA key {self.path}: {exc}") from None
        try:
            key = serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"the SSH CA key {self.path} is malformed: {type(exc).__name__}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"the SSH CA key {self.path} is not an ed25519 key")
        return key

    def _create(self) -> None:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        try:
            # Never replaces: a CA another process made first stays, and the
            # certificates it signed stay valid.
            if publish_once(self.path, pem):
                log.info("created the SSH user CA key %s", self.path)
        except OSError as exc:
            raise KeyStoreError(f"cannot create the SSH CA key {self.path}: {exc}") from None
