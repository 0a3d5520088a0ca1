"""SSH public keys bound to an identity in the configuration (``[[ssh_keys]]``).

Guarantees of :class:`KeyBindings`:

* a key is accepted only if its wire blob equals a configured one, byte for byte;
* a binding past its ``expires`` is refused like an unknown key;
* the identity's ``token_id`` is ``key:`` and the key's SHA-256 fingerprint, so
  ``hoopd revoke key:SHA256:...`` revokes one key, and logs name the key, never
  anything secret (a public key is not a secret: lookups need not be constant-time);
* ``lookup`` never raises, whatever it is given.

Whether the client holds the private key is the SSH layer's check (the signature
over the session); revocation and scope are the :class:`Authenticator`'s, as for
every other credential.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Final

from hoopd.config_identity import SshKeyConfig
from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import fingerprint

TOKEN_ID_PREFIX: Final = "key:"
ISSUER_NAME: Final = "static"
"""``Identity.issuer`` of a bound key: configured, like a static token."""


class KeyBindings:
    """The configured key bindings, by key blob.

    Raises ``ValueError`` at construction if a key is bound twice (the configuration
    loader already refuses it).
    """

    def __init__(
        self, bindings: Sequence[SshKeyConfig], clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._by_key: dict[bytes, Identity] = {}
        for binding in bindings:
            for blob in binding.keys:
                if blob in self._by_key:
                    raise ValueError(f"SSH key {fingerprint(blob)} is bound twice")
                self._by_key[blob] = Identity(
                    subject=binding.identity,
                    groups=tuple(binding.groups),
                    token_id=key_token_id(blob),
                    scope=binding.scope,
                    expires_at=None if math.isinf(binding.expires_at) else binding.expires_at,
                    issuer=ISSUER_NAME,
                )

    def lookup(self, blob: bytes) -> Identity | None:
        """The identity ``blob`` is bound to, or None (unknown, or the binding expired)."""
        if not isinstance(blob, bytes):
            return None
        found = self._by_key.get(blob)
        if found is None or found.expires_at is None:
            return found
        return None if self._clock() >= found.expires_at else found

    def token_ids(self) -> frozenset[str]:
        """The token id of every bound key (``hoopd revoke`` checks names against it)."""
        return frozenset(identity.token_id for identity in self._by_key.values())


def key_token_id(blob: bytes) -> str:
    """The token id a bound key logs in with: ``key:SHA256:...``."""
    return TOKEN_ID_PREFIX + fingerprint(blob)
