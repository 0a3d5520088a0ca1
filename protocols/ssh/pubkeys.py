"""Public keys and certificates: the gateway's check of the raw key, before asyncssh's.

asyncssh hands an ``SSHServer`` the parsed key (``validate_public_key``) or, for an
OpenSSH certificate, only its CA's key (``validate_ca_key``); the certificate itself,
whose extension holds the identity hoopd's CA certified, never reaches it (asyncssh
drops extensions it does not know). So each connection's entry point for public-key
requests, ``SSHServerConnection.validate_public_key(username, key_data, msg,
signature)``, is wrapped: the gateway's check sees the key or certificate as the
client sent it and decides who it is; only a key it admitted goes on to asyncssh's
own checks (the server's hooks, a certificate's type and validity window, and the
signature over the session that proves the client holds the private key).

Guarantee: a public-key request succeeds only if both the gateway's check and
asyncssh's succeed; the gateway's check runs first, for every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncssh

AsyncsshCheck = Callable[[], Awaitable[bool]]
"""asyncssh's own checks of the request being handled."""

KeyCheck = Callable[[str, bytes, bytes, AsyncsshCheck], Awaitable[bool]]
"""(user name, key or certificate blob, signed data (empty: a query), asyncssh's
checks) -> whether the request succeeds."""


def check_keys_first(conn: asyncssh.SSHServerConnection, check: KeyCheck) -> None:
    """Route every public-key request of ``conn`` through ``check``."""
    asyncssh_validate = conn.validate_public_key

    async def validate(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
        async def asyncssh_check() -> bool:
            return await asyncssh_validate(username, key_data, msg, signature)

        return await check(username, key_data, msg, asyncssh_check)

    # An attribute of this one connection object, read by asyncssh's public-key
    # handler for each request (see the module docstring for why).
    conn.validate_public_key = validate  # type: ignore[method-assign]
