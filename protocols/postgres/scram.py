"""Client side of the upstream password exchanges: SCRAM-SHA-256 (RFC 5802/7677) and MD5.

Sans-IO: the caller moves the messages; these functions only compute them. The
gateway authenticates to targets with its own credentials; nothing here ever sees
a client's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from hoopd.codec import ProtocolError

MECHANISM = "SCRAM-SHA-256"


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """PostgreSQL's MD5 answer: 'md5' + md5(md5(password + user) + salt), NUL-terminated."""
    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
    return b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"


def _saslprep(password: str) -> str:
    # PostgreSQL applies SASLprep where it can and falls back to the raw bytes; for
    # ASCII passwords (the overwhelming case) both are the identity.
    return password


class ScramClient:
    """One SCRAM-SHA-256 exchange without channel binding.

    ``first_message()`` -> send; ``final_message(server_first)`` -> send;
    ``verify_server(server_final)`` raises ``ProtocolError`` if the server cannot
    prove it knows the password (a man in the middle on the target leg).
    """

    def __init__(self, password: str, nonce: str | None = None) -> None:
        self._password = _saslprep(password)
        self._client_nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n=,r={self._client_nonce}"
        self._server_signature: bytes | None = None

    def first_message(self) -> bytes:
        return b"n,," + self._first_bare.encode()

    def final_message(self, server_first: bytes) -> bytes:
        try:
            attributes = dict(
                item.split("=", 1) for item in server_first.decode("ascii").split(",")
            )
            nonce = attributes["r"]
            salt = base64.b64decode(attributes["s"], validate=True)
            iterations = int(attributes["i"])
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            raise ProtocolError("target sent a malformed SCRAM challenge") from exc
        if not nonce.startswith(self._client_nonce) or iterations < 1:
            raise ProtocolError("target sent an invalid SCRAM challenge")
        salted = hashlib.pbkdf2_hmac("sha256", self._password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first.decode('ascii')},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server(self, server_final: bytes) -> None:
        expected = self._server_signature
        text = server_final.decode("ascii", "replace")
        if expected is None or not text.startswith("v="):
            raise ProtocolError("target sent an invalid SCRAM final message")
        try:
            signature = base64.b64decode(text[2:].split(",", 1)[0], validate=True)
        except ValueError as exc:
            raise ProtocolError("target sent an invalid SCRAM final message") from exc
        if not hmac.compare_digest(signature, expected):
            raise ProtocolError("target failed to prove it knows the password")
