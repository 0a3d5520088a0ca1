"""The gateway's token signing keys: ES256 (P-256) key pairs in ``<data_dir>/keys/``.

Guarantees:

* The directory is created mode 0700 and every key file mode 0600; a key file is
  written to a temporary name and renamed into place, so a process reading the
  directory sees a complete key or none, however many gateways share it.
* The newest key (by serial number, then creation time) signs; every key still in
  the directory verifies. The first key is created on first use.
* :meth:`KeyRing.rotate` creates a new signing key and deletes only keys that can no
  longer have a valid token: a key stops signing when its successor is created, and
  no token lives longer than ``max_ttl_seconds``, so a key is retired once its
  successor is older than that (plus the verifier's clock leeway).
* A change made by another process (a rotation by ``hoopd keys rotate``) is seen by
  the next call: each call compares the directory's modification time, and a
  directory changed in the last two seconds is read again whatever its time says
  (timestamps are coarser than the changes they record).
* ``kid`` values from a token header are only ever looked up in memory, never used
  to build a path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hoopd.private_file import TEMP_PREFIX, write_new_private

ALGORITHM: Final = "ES256"
KEYS_DIRNAME: Final = "keys"
CLOCK_LEEWAY_SECONDS: Final = 30
_SUFFIX: Final = ".json"
_MTIME_TRUST_SECONDS: Final = 2.0


class KeyStoreError(Exception):
    """The key directory cannot be used; the message names the path and why."""


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """One key pair. ``private_pem`` is secret: it is left out of ``repr``."""

    kid: str
    created_at: float
    private_pem: str
    serial: int = 0

    @property
    def public_pem(self) -> str:
        return _public_pem(self.private_pem)

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517/7518), with ``kid``, ``alg`` and ``use``."""
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        numbers = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, created_at={self.created_at!r})"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``hoopd keys list`` shows: ``signing`` for the newest key; for an older
    one, ``retire_after`` is when :meth:`KeyRing.rotate` may delete it."""

    kid: str
    created_at: float
    signing: bool
    retire_after: float | None


class KeyRing:
    """The keys in ``<data_dir>/keys/``; see the module docstring for guarantees.

    Raises :class:`KeyStoreError` when the directory or a key file cannot be used.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        max_ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = data_dir / KEYS_DIRNAME
        self._max_ttl = max_ttl_seconds
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._public: dict[str, str] = {}
        self._seen_mtime: int | None = None

    def signing_key(self) -> SigningKey:
        """The newest key, creating the first one if there is none."""
        self._refresh()
        if not self._keys:
            self._create()
            self._refresh()
        return self._keys[-1]

    def public_pem(self, kid: str) -> str | None:
        """The PEM public key for ``kid``, or None if no key has that id."""
        self._refresh()
        return self._public.get(kid)

    def rotate(self) -> tuple[SigningKey, list[str]]:
        """Create a new signing key; delete keys whose every token has expired.

        Returns the new key and the ids of the keys deleted.
        """
        self._refresh()
        self._create()
        self._refresh()
        retired = [info.kid for info in self.list() if self._retired(info)]
        for kid in retired:
            # Another process may have retired it first.
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{kid}{_SUFFIX}").unlink()
        self._seen_mtime = None
        self._refresh()
        return self._keys[-1], retired

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        self._refresh()
        infos = []
        for i, key in enumerate(self._keys):
            newer = self._keys[i + 1] if i + 1 < len(self._keys) else None
            retire_after = (
                None if newer is None else newer.created_at + self._max_ttl + CLOCK_LEEWAY_SECONDS
            )
            infos.append(KeyInfo(key.kid, key.created_at, newer is None, retire_after))
        return infos

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517 section 5) of every key that verifies."""
        if not self._keys:
            self.signing_key()
        else:
            self._refresh()
        return {"keys": [key.public_jwk() for key in self._keys]}

    def _retired(self, info: KeyInfo) -> bool:
        return info.retire_after is not None and info.retire_after <= self._clock()

    def _create(self) -> None:
        self._ensure_directory()
        kid = secrets.token_urlsafe(12)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        # The serial orders keys even when two are created within one clock tick.
        serial = self._keys[-1].serial + 1 if self._keys else 1
        record = {
            "kid": kid,
            "alg": ALGORITHM,
            "serial": serial,
            "created_at": self._clock(),
            "private_key": pem,
        }
        data = json.dumps(record).encode()
        temp = self.directory / f"{TEMP_PREFIX}{kid}"
        final = self.directory / f"{kid}{_SUFFIX}"
        try:
            write_new_private(temp, data)
            # rename is atomic: readers see the whole file or none.
            os.replace(temp, final)
        except OSError as exc:
            raise KeyStoreError(f"cannot write a signing key in {self.directory}: {exc}") from None

        # Reload on the next call even if the directory's mtime is coarse.
        self._seen_mtime = None

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise KeyStoreError(f"cannot create {self.directory}: {exc}") from None

    def _refresh(self) -> None:
        try:
            mtime = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            self._keys, self._public, self._seen_mtime = [], {}, None
            return
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.directory}: {exc}") from None
        if mtime == self._seen_mtime:
            return
        keys = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.directory}: {exc}") from None
        for name in names:
            if name.startswith(TEMP_PREFIX) or not name.endswith(_SUFFIX):
                continue
            loaded = self._load(self.directory / name)
            if loaded is not None:
                keys.append(loaded)
        keys.sort(key=lambda k: (k.serial, k.created_at, k.kid))
        self._keys = keys
        self._public = {k.kid: k.public_pem for k in keys}
        # A change within the filesystem's timestamp granularity of this listing
        # would leave the mtime as it is: trust a cached listing only once the
        # directory has been quiet for a while.
        quiet = time.time() - mtime / 1e9 > _MTIME_TRUST_SECONDS
        self._seen_mtime = mtime if quiet else None

    def _load(self, path: Path) -> SigningKey | None:
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None  # retired by another process between listing and reading
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read signing key {path}: {exc}") from None
        try:
            key = SigningKey(
                str(record["kid"]),
                float(record["created_at"]),
                str(record["private_key"]),
                int(record["serial"]),
            )
            key.public_pem  # noqa: B018 -- proves the PEM is an EC key now, not at first use
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise KeyStoreError(f"signing key {path} is malformed: {type(exc).__name__}") from None
        return key


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 key")
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
