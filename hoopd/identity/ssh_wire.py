"""OpenSSH public keys as bytes: the SSH wire encoding (RFC 4251 section 5) of a
public key, its one-line text form (``ssh-ed25519 AAAA... comment``) and its
SHA-256 fingerprint.

Guarantees: :class:`Reader` and every parser here raise only :class:`SshWireError`
for malformed input, whatever the bytes or text, and read no further than the
data they were given. :func:`public_key_blob` accepts only the key types in
:data:`KEY_FIELDS`, encoded exactly (the algorithm name, then that many fields,
then nothing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import Final

KEY_FIELDS: Final[dict[str, int]] = {
    "ssh-ed25519": 1,  # key
    "ssh-rsa": 2,  # e, n
    "ecdsa-sha2-nistp256": 2,  # curve, point
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
    "sk-ssh-ed25519@openssh.com": 2,  # key, application
    "sk-ecdsa-sha2-nistp256@openssh.com": 3,  # curve, point, application
}
"""The public key types hoopd accepts, and how many wire strings follow the name
(an mpint is a string on the wire). DSA keys are left out: OpenSSH no longer
accepts them."""

# A key line or blob far beyond the largest RSA key is not a key; refusing it up
# front bounds the work an unauthenticated client can cause.
MAX_BLOB_BYTES: Final = 16 * 1024


class SshWireError(ValueError):
    """Bytes or text that are not what they should be; the message says what (no data)."""


class Reader:
    """Reads SSH wire values from ``data`` front to back."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def string(self) -> bytes:
        size = self.uint32()
        if size > len(self._data) - self._at:
            raise SshWireError("a string runs past the end of the data")
        value = self._data[self._at : self._at + size]
        self._at += size
        return value

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise SshWireError("a text field is not UTF-8") from None

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def consumed(self) -> bytes:
        """Everything read so far."""
        return self._data[: self._at]

    def done(self) -> bool:
        """Whether every byte was read."""
        return self._at == len(self._data)

    def end(self) -> None:
        """Raise unless every byte was read."""
        if self._at != len(self._data):
            raise SshWireError("unexpected data after the end")

    def _take(self, size: int) -> bytes:
        if size > len(self._data) - self._at:
            raise SshWireError("the data ends too early")
        value = self._data[self._at : self._at + size]
        self._at += size
        return value


def string(value: bytes | str) -> bytes:
    """``value`` as an SSH string: its length (uint32) then its bytes."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack(">I", len(raw)) + raw


def uint32(value: int) -> bytes:
    return struct.pack(">I", value)


def uint64(value: int) -> bytes:
    return struct.pack(">Q", value)


def key_fields(blob: bytes) -> tuple[str, bytes]:
    """A public key blob's algorithm and the encoded fields after its name.

    Raises SshWireError unless ``blob`` is exactly one key of a type in
    :data:`KEY_FIELDS`.
    """
    if len(blob) > MAX_BLOB_BYTES:
        raise SshWireError("the key is too large")
    reader = Reader(blob)
    algorithm = reader.text()
    count = KEY_FIELDS.get(algorithm)
    if count is None:
        raise SshWireError("not a supported public key type")
    start = len(reader.consumed())
    for _ in range(count):
        reader.string()
    reader.end()
    return algorithm, blob[start:]


def key_algorithm(blob: bytes) -> str | None:
    """The algorithm name a key or certificate blob starts with, or None (read
    without checking the rest: for routing only)."""
    try:
        return Reader(blob).text()
    except SshWireError:
        return None


def public_key_blob(line: str) -> bytes:
    """The blob of an OpenSSH public key line (``TYPE BASE64 [COMMENT]``); raises
    SshWireError when it is not one key of a supported type whose blob says the
    same type."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise SshWireError("a public key line is TYPE BASE64 [COMMENT]")
    if len(parts[1]) > MAX_BLOB_BYTES * 2:
        raise SshWireError("the key is too large")
    try:
        blob = base64.b64decode(parts[1].encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SshWireError("the key is not valid base64") from None
    algorithm, _fields = key_fields(blob)
    if algorithm != parts[0]:
        raise SshWireError("the key's type differs from the type the line names")
    return blob


def fingerprint(blob: bytes) -> str:
    """OpenSSH's fingerprint of a key blob: ``SHA256:`` and unpadded base64."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
