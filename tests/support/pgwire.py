"""A deliberately small PostgreSQL frontend speaking raw protocol over a socket.

libpq hides what the tests need to see: the exact SQLSTATE of an authentication
failure, whether the server answered a GSSENCRequest, what happens on malformed
bytes. This module sends exactly the bytes a test asks for and parses what comes
back; it is not a general client.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# ErrorResponse / NoticeResponse field codes, by name.
ERROR_FIELD_NAMES = {
    "S": "severity",
    "V": "severity_nonlocalized",
    "C": "code",
    "M": "message",
    "D": "detail",
    "H": "hint",
    "P": "position",
    "p": "internal_position",
    "q": "internal_query",
    "W": "where",
    "s": "schema",
    "t": "table",
    "c": "column",
    "d": "data_type",
    "n": "constraint",
    "F": "file",
    "L": "line",
    "R": "routine",
}


class WireError(Exception):
    """The peer closed, timed out, or sent something this helper cannot follow."""


def _int32(value: int) -> bytes:
    return struct.pack("!i", value)


def startup_message(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = _int32(version)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return _int32(len(body) + 4) + body


def ssl_request() -> bytes:
    return _int32(8) + _int32(SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return _int32(8) + _int32(GSSENC_REQUEST_CODE)


def cancel_request(pid: int, secret_key: int) -> bytes:
    return _int32(16) + _int32(CANCEL_REQUEST_CODE) + _int32(pid) + _int32(secret_key)


def message(kind: bytes, body: bytes) -> bytes:
    return kind + _int32(len(body) + 4) + body


def password_message(password: str) -> bytes:
    return message(b"p", password.encode() + b"\0")


def query_message(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\0")


def terminate_message() -> bytes:
    return message(b"X", b"")


def parse_error_fields(payload: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse, keyed by name (``code``, ...)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != 0:
        code = chr(payload[pos])
        end = payload.index(b"\0", pos + 1)
        fields[ERROR_FIELD_NAMES.get(code, code)] = payload[pos + 1 : end].decode(
            "utf-8", errors="replace"
        )
        pos = end + 1
    return fields


def client_tls_context() -> ssl.SSLContext:
    """What ``sslmode=require`` does: encrypt, do not verify."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class QueryResult:
    rows: list[list[str | None]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    notices: list[dict[str, str]] = field(default_factory=list)


class RawConnection:
    """A socket (optionally upgraded to TLS) with message framing and deadlines."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""
        self.backend_key: tuple[int, int] | None = None
        self.parameters: dict[str, str] = {}

    # ----------------------------------------------------------------- raw I/O

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise WireError("timed out waiting for the server") from None
        if not chunk:
            return False
        self._buf += chunk
        return True

    def read_exact(self, count: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < count:
            if not self._fill(deadline):
                raise WireError(f"connection closed after {len(self._buf)} of {count} bytes")
        data, self._buf = self._buf[:count], self._buf[count:]
        return data

    def read_byte(self, timeout: float | None = None) -> bytes:
        return self.read_exact(1, timeout)

    def read_message(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        head = self.read_exact(5, timeout)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        if length < 4 or length > 64 * 1024 * 1024:
            raise WireError(f"implausible message length {length} for {kind!r}")
        return kind, self.read_exact(length - 4, timeout)

    def read_until_closed(self, timeout: float) -> bytes:
        """Everything the peer sends until it closes; WireError if it stays open."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            pass
        data, self._buf = self._buf, b""
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # ---------------------------------------------------------------- protocol

    def negotiate_tls(self) -> None:
        self.send(ssl_request())
        answer = self.read_byte()
        if answer != b"S":
            raise WireError(f"server answered SSLRequest with {answer!r}")
        if self._buf:
            raise WireError("server sent bytes after 'S' before the TLS handshake")
        self.sock.settimeout(self.timeout)
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def authenticate(self, params: dict[str, str], password: str) -> dict[str, str] | None:
        """Startup + cleartext password; None on ReadyForQuery, else the error fields."""
        self.send(startup_message(params))
        while True:
            kind, body = self.read_message()
            if kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code == 3:
                    self.send(password_message(password))
                elif code != 0:
                    raise WireError(f"unexpected authentication request {code}")
            elif kind == b"E":
                return parse_error_fields(body)
            elif kind == b"S":
                key, _, rest = body.partition(b"\0")
                self.parameters[key.decode()] = rest.rstrip(b"\0").decode()
            elif kind == b"K":
                pid, secret_key = struct.unpack("!ii", body[:8])
                self.backend_key = (pid, secret_key)
            elif kind == b"Z":
                return None
            # NoticeResponse and anything else during startup: ignore

    def simple_query(self, sql: str) -> QueryResult:
        self.send(query_message(sql))
        result = QueryResult()
        while True:
            kind, body = self.read_message()
            if kind == b"D":
                (count,) = struct.unpack("!h", body[:2])
                pos = 2
                row: list[str | None] = []
                for _ in range(count):
                    (size,) = struct.unpack("!i", body[pos : pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos : pos + size].decode())
                        pos += size
                result.rows.append(row)
            elif kind == b"C":
                result.tags.append(body.rstrip(b"\0").decode())
            elif kind == b"E":
                result.error = parse_error_fields(body)
            elif kind == b"N":
                result.notices.append(parse_error_fields(body))
            elif kind == b"Z":
                return result


def open_session(
    host: str,
    port: int,
    *,
    dbname: str,
    password: str,
    user: str = "anything",
    tls: bool = True,
    gssenc_first: bool = False,
    timeout: float = 10.0,
) -> tuple[RawConnection, dict[str, str] | None]:
    """Connect and authenticate; returns the connection and the error fields (None if in)."""
    conn = RawConnection(host, port, timeout)
    try:
        if gssenc_first:
            conn.send(gssenc_request())
            answer = conn.read_byte()
            if answer != b"N":
                raise WireError(f"server answered GSSENCRequest with {answer!r}")
        if tls:
            conn.negotiate_tls()
        error = conn.authenticate(
            {"user": user, "database": dbname, "application_name": "raw-wire-test"}, password
        )
    except BaseException:
        conn.close()
        raise
    return conn, error
