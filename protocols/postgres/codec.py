"""Sans-IO PostgreSQL wire-protocol codec (protocol 3.0).

Theory of operation
-------------------
One ``PostgresCodec`` stands on each leg of a proxied connection:

* ``Role.SERVER`` faces a client: it decodes frontend messages and encodes backend
  ones. It starts in the *startup* phase, where messages have no tag byte
  (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage); decoding a
  StartupMessage moves it to the *typed* phase; a CancelRequest ends the stream.
* ``Role.CLIENT`` faces a server: it decodes backend messages and encodes frontend
  ones. Sending an SSLRequest makes it expect the server's one-byte answer
  (``SSLResponse``) before anything else.

Feed bytes with ``receive_data`` (``b""`` is end of stream), then call
``next_event`` until it returns ``NEED_DATA``. The codec buffers at most one
incomplete message (bounded by ``max_message_size``) plus the unparsed rest of the
last chunk, and never copies a large message more than once.

Forwarding without re-encoding: ``take_consumed()`` returns the exact bytes of
every message decoded since the previous call — when a chunk held only whole
messages, that is the very ``bytes`` object that was received. A proxy that
leaves messages unchanged forwards those bytes; one that replaces a message calls
``take_consumed()`` before decoding it, then ``drop_consumed()`` after.

Bad peer input raises ``ProtocolError`` (with the SQLSTATE to answer with), and
nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar, cast

from hoopd.codec import NEED_DATA, LocalProtocolError, NeedData, ProtocolError

from . import backend as be
from . import frontend as fe
from . import wire
from .bidirectional import CopyData, CopyDone, Unknown

DEFAULT_MAX_MESSAGE_SIZE: Final = 128 * 1024 * 1024
MAX_STARTUP_PACKET: Final = 10_000  # what PostgreSQL itself accepts


class Role(enum.Enum):
    SERVER = "server"  # we face a client
    CLIENT = "client"  # we face a server


class _Phase(enum.Enum):
    STARTUP = "startup"
    TYPED = "typed"
    AWAIT_SSL_RESPONSE = "await-ssl-response"
    ENDED = "ended"


_TYPED: Final = _Phase.TYPED
_unpack_length = wire.UINT32.unpack_from


def _bad_length(length: int, limit: int) -> ProtocolError:
    if length < 4:
        return ProtocolError("invalid message length")
    return ProtocolError(
        f"message of {length} bytes exceeds the gateway's limit of {limit} bytes", "54000"
    )


@dataclass(frozen=True, slots=True)
class SSLResponse:
    """The server's one-byte answer to an SSLRequest."""

    accepted: bool


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side cleanly, between messages."""


CONNECTION_CLOSED: Final = ConnectionClosed()

FrontendMessage = (
    fe.SSLRequest
    | fe.GSSENCRequest
    | fe.CancelRequest
    | fe.StartupMessage
    | fe.PasswordMessage
    | fe.Query
    | fe.Parse
    | fe.Bind
    | fe.Execute
    | fe.Describe
    | fe.Close
    | fe.Sync
    | fe.Flush
    | fe.Terminate
    | fe.FunctionCall
    | fe.CopyFail
    | CopyData
    | CopyDone
)

BackendMessage = (
    be.Authentication
    | be.BackendKeyData
    | be.ParameterStatus
    | be.ReadyForQuery
    | be.RowDescription
    | be.DataRow
    | be.CommandComplete
    | be.ErrorResponse
    | be.NoticeResponse
    | be.NotificationResponse
    | be.ParameterDescription
    | be.CopyResponse
    | be.FunctionCallResponse
    | be.NegotiateProtocolVersion
    | be.EmptyQueryResponse
    | be.ParseComplete
    | be.BindComplete
    | be.CloseComplete
    | be.NoData
    | be.PortalSuspended
    | CopyData
    | CopyDone
    | Unknown
    | SSLResponse
)

Message = FrontendMessage | BackendMessage
Event = Message | NeedData | ConnectionClosed

_FRONTEND_DECODERS: dict[int, Callable[[bytes], FrontendMessage]] = {
    cls.TAG[0]: cls.decode
    for cls in (
        fe.PasswordMessage,
        fe.Query,
        fe.Parse,
        fe.Bind,
        fe.Execute,
        fe.Describe,
        fe.Close,
        fe.Sync,
        fe.Flush,
        fe.Terminate,
        fe.FunctionCall,
        fe.CopyFail,
        CopyData,
        CopyDone,
    )
}

# Every backend message class with a fixed tag (the three copy responses share a class).
_TAGGED_BACKEND_CLASSES = (
    be.Authentication,
    be.BackendKeyData,
    be.ParameterStatus,
    be.ReadyForQuery,
    be.RowDescription,
    be.DataRow,
    be.CommandComplete,
    be.ErrorResponse,
    be.NoticeResponse,
    be.NotificationResponse,
    be.ParameterDescription,
    be.FunctionCallResponse,
    be.NegotiateProtocolVersion,
    be.EmptyQueryResponse,
    be.ParseComplete,
    be.BindComplete,
    be.CloseComplete,
    be.NoData,
    be.PortalSuspended,
    CopyData,
    CopyDone,
)

_BACKEND_DECODERS: dict[int, Callable[[bytes], BackendMessage]] = {
    cls.TAG[0]: cls.decode for cls in _TAGGED_BACKEND_CLASSES
}


def _copy_response_decoder(tag: bytes) -> Callable[[bytes], BackendMessage]:
    def decode(body: bytes) -> BackendMessage:
        return be.CopyResponse.decode_tagged(tag, body)

    return decode


for _copy_tag in (b"G", b"H", b"W"):
    _BACKEND_DECODERS[_copy_tag[0]] = _copy_response_decoder(_copy_tag)

_BACKEND_TYPES = (*_TAGGED_BACKEND_CLASSES, be.CopyResponse, Unknown)

# Messages a client or server sends again and again with the same bytes: a driver's
# Parse of the same text, Describe, Execute and Sync of the unnamed portal; the same
# RowDescription and CommandComplete for each run of a statement. Decoded messages are
# immutable, so each codec keeps one instance per distinct body and hands it out again
# instead of decoding anew (a few µs per round trip). Per codec, so that one session's
# traffic never changes what another session's decoding costs.
_INTERNED_FRONTEND: Final[tuple[int, ...]] = tuple(
    cls.TAG[0] for cls in (fe.Parse, fe.Describe, fe.Execute, fe.Sync)
)
_INTERNED_BACKEND: Final[tuple[int, ...]] = tuple(
    cls.TAG[0] for cls in (be.RowDescription, be.CommandComplete)
)
#: Distinct bodies kept per message type and codec (all are forgotten when full),
#: and the largest body kept.
INTERNED_ENTRIES: Final = 64
INTERNED_MAX_BODY: Final = 2048

_Decoder = TypeVar("_Decoder", bound=Callable[[bytes], Message])


def _interned(decode: _Decoder) -> _Decoder:
    """``decode``, returning the message it decoded earlier for the same body.

    Only bodies that decoded are kept, so malformed input raises every time."""
    seen: dict[bytes, Message] = {}

    def decode_interned(body: bytes) -> Message:
        message = seen.get(body)
        if message is None:
            message = decode(body)
            if len(body) <= INTERNED_MAX_BODY:
                if len(seen) >= INTERNED_ENTRIES:
                    seen.clear()
                seen[body] = message
        return message

    return cast(_Decoder, decode_interned)


class PostgresCodec:
    """One leg of a PostgreSQL connection; see the module docstring."""

    def __init__(self, role: Role, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.role = role
        self.max_message_size = max_message_size
        self._phase = _Phase.STARTUP if role is Role.SERVER else _TYPED
        decoders: Mapping[int, Callable[[bytes], Message]]
        if role is Role.SERVER:
            decoders, interned = _FRONTEND_DECODERS, _INTERNED_FRONTEND
        else:
            decoders, interned = _BACKEND_DECODERS, _INTERNED_BACKEND
        self._decoders = {**decoders, **{tag: _interned(decoders[tag]) for tag in interned}}
        #: Tags of messages to consume without returning them; see ``passing_bulk``.
        self.pass_through: frozenset[int] = frozenset()
        self._buf = b""
        self._pos = 0  # start of the first undecoded byte in _buf
        self._mark = 0  # start of decoded bytes not yet handed out by take_consumed
        self._pending: list[bytes] = []  # chunks received after _buf, not yet joined
        self._pending_len = 0
        self._eof = False
        # The byte that accepts the latest encryption request: "S" for SSL, "G" for GSSAPI.
        self._accept_byte = b"S"

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self._eof = True
            return
        if self._pos == len(self._buf) and self._mark == self._pos and not self._pending:
            self._buf, self._pos, self._mark = data, 0, 0
        else:
            self._pending.append(data)
            self._pending_len += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded."""
        return len(self._buf) - self._pos + self._pending_len

    def next_event(self) -> Event:
        """The next complete message, ``NEED_DATA``, or ``CONNECTION_CLOSED``.

        Messages whose tag is in ``pass_through`` are consumed without being
        returned (see ``passing_bulk``). Raises ``ProtocolError`` on malformed or
        oversized input, or on a close in the middle of a message.
        """
        if self._phase is not _TYPED:
            return self._next_untyped()
        # The hot path of every relayed message: kept to plain locals on purpose.
        buf, pos = self._buf, self._pos
        while True:
            if len(buf) - pos < 5:
                self._pos = pos
                if not self._join_if_available(5):
                    return self._end_of_input()
                buf, pos = self._buf, self._pos
            length = _unpack_length(buf, pos + 1)[0]
            if length < 4 or length > self.max_message_size:
                self._pos = pos
                raise _bad_length(length, self.max_message_size)
            end = pos + 1 + length
            if end > len(buf):
                self._pos = pos
                if not self._join_if_available(end - pos):
                    return self._end_of_input()
                buf, pos = self._buf, self._pos
                end = pos + 1 + length
            tag = buf[pos]
            if tag in self.pass_through:
                pos = end
                continue
            self._pos = end
            decoder = self._decoders.get(tag)
            if decoder is None:
                return self._undecodable(buf[pos : pos + 1], buf[pos + 5 : end])
            return decoder(buf[pos + 5 : end])

    def drain(self) -> tuple[list[Message], bool]:
        """Every complete message buffered, in order, and whether the peer has closed.

        The same messages, errors and state as calling ``next_event`` until it
        returns ``NEED_DATA`` or ``CONNECTION_CLOSED`` (the flag is True for the
        latter); this is the relay's per-chunk path, so whole messages already in
        the current buffer are framed in one loop. Raises ``ProtocolError`` as
        ``next_event`` does; messages decoded before the bad one are then lost.
        """
        messages: list[Message] = []
        append = messages.append
        if self._phase is _TYPED:
            buf, pos = self._buf, self._pos
            size, limit = len(buf), self.max_message_size
            passing, decoders = self.pass_through, self._decoders
            try:
                while size - pos >= 5:
                    length = _unpack_length(buf, pos + 1)[0]
                    if length < 4 or length > limit:
                        raise _bad_length(length, limit)
                    end = pos + 1 + length
                    if end > size:
                        break
                    start, pos = pos, end
                    tag = buf[start]
                    if tag in passing:
                        continue
                    decoder = decoders.get(tag)
                    if decoder is None:
                        append(self._undecodable(buf[start : start + 1], buf[start + 5 : end]))
                    else:
                        append(decoder(buf[start + 5 : end]))
            finally:
                self._pos = pos
        while True:  # partial messages, other phases and the end of input
            event = self.next_event()
            if event is NEED_DATA:
                return messages, False
            if event is CONNECTION_CLOSED:
                return messages, True
            append(event)  # type: ignore[arg-type]

    def _undecodable(self, tag: bytes, body: bytes) -> Message:
        if self.role is Role.SERVER:
            raise ProtocolError(f"invalid frontend message type {tag!r}")
        return Unknown(tag, body)

    def _next_untyped(self) -> Event:
        """Startup-phase messages, the answer to an encryption request, or the end."""
        if self._phase is _Phase.AWAIT_SSL_RESPONSE:
            return self._next_ssl_response()
        if self._phase is _Phase.ENDED:
            if self.buffered:
                raise ProtocolError("unexpected data after a cancel request")
            return CONNECTION_CLOSED if self._eof else NEED_DATA
        if len(self._buf) - self._pos < 4 and not self._join_if_available(4):
            return self._end_of_input()
        length = _unpack_length(self._buf, self._pos)[0]
        if length < 8:
            raise ProtocolError("invalid message length")
        if length > MAX_STARTUP_PACKET:
            raise _bad_length(length, MAX_STARTUP_PACKET)
        if len(self._buf) - self._pos < length and not self._join_if_available(length):
            return self._end_of_input()
        pos = self._pos
        self._pos = pos + length
        return self._decode_startup(self._buf[pos + 4 : pos + length])

    def _join_if_available(self, needed: int) -> bool:
        """Make ``needed`` bytes from _pos contiguous in _buf, if that many arrived."""
        if len(self._buf) - self._pos + self._pending_len < needed:
            return False
        self._buf = self._buf[self._mark :] + b"".join(self._pending)
        self._pos -= self._mark
        self._mark = 0
        self._pending.clear()
        self._pending_len = 0
        return True

    def _end_of_input(self) -> NeedData | ConnectionClosed:
        if not self._eof:
            return NEED_DATA
        if self.buffered:
            raise ProtocolError("connection closed in the middle of a message")
        return CONNECTION_CLOSED

    def _decode_startup(self, body: bytes) -> FrontendMessage:
        message = fe.decode_startup(body)
        if isinstance(message, fe.StartupMessage):
            self._phase = _TYPED
        elif isinstance(message, fe.CancelRequest):
            self._phase = _Phase.ENDED
        else:
            self._accept_byte = b"G" if isinstance(message, fe.GSSENCRequest) else b"S"
            if self.buffered:
                # The client must wait for our one-byte answer; bytes sent before it
                # would otherwise be read as if they had come over the encrypted channel.
                raise ProtocolError("unexpected data after an encryption request")
        return message

    def _next_ssl_response(self) -> SSLResponse | NeedData | ConnectionClosed:
        if len(self._buf) - self._pos < 1 and not self._join_if_available(1):
            return self._end_of_input()
        answer = self._buf[self._pos : self._pos + 1]
        self._pos += 1
        if answer not in (self._accept_byte, b"N"):
            raise ProtocolError(f"invalid answer to an encryption request: {answer!r}")
        if self.buffered:
            raise ProtocolError("unexpected data after the server's answer to an SSL request")
        self._phase = _TYPED
        return SSLResponse(answer == self._accept_byte)

    # ------------------------------------------------------------ forwarding

    def passing_bulk(self, enabled: bool = True) -> None:
        """Consume bulk messages without returning them: CopyData both ways, and
        DataRow from a server ('D' from a client is Describe, which is always decoded).

        Only framing is checked for them; their bytes still come out of
        ``take_consumed``. A relay that needs no row contents turns this on, so a
        large result or COPY costs a fraction of full decoding.
        """
        bulk = b"d" if self.role is Role.SERVER else b"dD"
        self.pass_through = frozenset(bulk) if enabled else frozenset()

    def take_consumed(self) -> bytes:
        """The exact bytes of the messages decoded since the last call."""
        if self._mark == 0 and self._pos == len(self._buf):
            taken = self._buf
        else:
            taken = self._buf[self._mark : self._pos]
        self._mark = self._pos
        if self._pos == len(self._buf) and not self._pending:
            self._buf, self._pos, self._mark = b"", 0, 0
        return taken

    def drop_consumed(self) -> None:
        """Forget the bytes of the messages decoded since the last take (they were replaced)."""
        self._mark = self._pos

    # ---------------------------------------------------------------- output

    def send(self, message: Message) -> bytes:
        """Encode a message for the peer this codec faces.

        Raises ``LocalProtocolError`` for a message that travels the other way.
        """
        if self.role is Role.SERVER:
            if not isinstance(message, _BACKEND_TYPES):
                raise LocalProtocolError(f"a server does not send {type(message).__name__}")
            return message.encode()
        if isinstance(message, (SSLResponse, *_BACKEND_TYPES)) and not isinstance(
            message, (CopyData, CopyDone)
        ):
            raise LocalProtocolError(f"a client does not send {type(message).__name__}")
        assert not isinstance(message, SSLResponse)
        if isinstance(message, (fe.SSLRequest, fe.GSSENCRequest)):
            # GSSENCRequest is answered the same way, with "G" instead of "S".
            self._phase = _Phase.AWAIT_SSL_RESPONSE
            self._accept_byte = b"G" if isinstance(message, fe.GSSENCRequest) else b"S"
        return message.encode()

    def send_ssl_response(self, accepted: bool) -> bytes:
        """The one-byte answer (server role) to an SSLRequest or GSSENCRequest."""
        if self.role is not Role.SERVER:
            raise LocalProtocolError("only a server answers an encryption request")
        return self._accept_byte if accepted else b"N"
