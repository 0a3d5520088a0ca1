"""Coverage-guided fuzzing of the PostgreSQL codec with atheris.

The input is a raw byte stream. It is fed, in one piece and in chunks whose sizes
come from the input itself, to a codec in each role and phase:

* a server-role codec in the startup phase (the input is what a client sends first),
* a server-role codec already past a StartupMessage,
* a client-role codec (the input is what a server sends),
* a client-role codec waiting for the answer to its SSLRequest or GSSENCRequest.

The chunked feeding is repeated with ``passing_bulk()`` on.

Anything escaping the codec other than ``ProtocolError`` is a bug, and so is any
of these broken invariants: every decoded message re-encodes to exactly the bytes
``take_consumed`` hands out for it, and those bytes are the input, in order; both
feedings decode the same messages; passing bulk messages through leaves the other
messages and the outcome unchanged; the lazily decoded parts of messages (DataRow
values, Bind parameters, ...) raise nothing but ``ProtocolError`` either.

Run ``python fuzz/fuzz_pg_codec.py -help=1`` for libFuzzer's options; see README.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from hoopd.codec import NEED_DATA, ProtocolError
    from hoopd.protocols.postgres import backend as be
    from hoopd.protocols.postgres import frontend as fe
    from hoopd.protocols.postgres.bidirectional import CopyData
    from hoopd.protocols.postgres.codec import (
        ConnectionClosed,
        Event,
        PostgresCodec,
        Role,
        SSLResponse,
    )

STARTUP = fe.StartupMessage((("user", "fuzz"), ("database", "fuzz")))
_ENCRYPTION_EVENTS = (fe.SSLRequest, fe.GSSENCRequest, SSLResponse)


def _server_startup() -> PostgresCodec:
    return PostgresCodec(Role.SERVER)


def _server_typed() -> PostgresCodec:
    codec = PostgresCodec(Role.SERVER)
    codec.receive_data(STARTUP.encode())
    if codec.next_event() != STARTUP:
        raise AssertionError("the fixed StartupMessage did not decode")
    codec.drop_consumed()
    return codec


def _client() -> PostgresCodec:
    return PostgresCodec(Role.CLIENT)


def _client_after_ssl_request() -> PostgresCodec:
    codec = PostgresCodec(Role.CLIENT)
    codec.send(fe.SSLRequest())
    return codec


def _client_after_gssenc_request() -> PostgresCodec:
    codec = PostgresCodec(Role.CLIENT)
    codec.send(fe.GSSENCRequest())
    return codec


# Each way to start a codec, with the byte by which a server accepts encryption there.
CODECS: list[tuple[Callable[[], PostgresCodec], bytes]] = [
    (_server_startup, b"S"),
    (_server_typed, b"S"),
    (_client, b"S"),
    (_client_after_ssl_request, b"S"),
    (_client_after_gssenc_request, b"G"),
]


def _chunks(data: bytes) -> list[bytes]:
    """Cut ``data`` into pieces of 1 to 32 bytes, the sizes read from the input backwards."""
    chunks = []
    start = 0
    index = len(data) - 1
    while start < len(data):
        size = 1 + data[index] % 32
        chunks.append(data[start : start + size])
        start += size
        index -= 1
    return chunks


def _exercise(event: Event) -> None:
    """Call the parts of a message that decode lazily or interpret its fields."""
    if isinstance(event, be.DataRow):
        with contextlib.suppress(ProtocolError):
            event.values()
    elif isinstance(event, fe.Bind):
        event.decoded_params()
        for index in range(len(event.params)):
            event.param_format(index)
    elif isinstance(event, be.CommandComplete):
        event.row_count()
    elif isinstance(event, (be.ErrorResponse, be.NoticeResponse)):
        event.named()
    elif isinstance(event, be.Authentication):
        event.sasl_mechanisms()
    elif isinstance(event, fe.PasswordMessage):
        _ = event.password
    elif isinstance(event, fe.StartupMessage):
        event.get("user")


def _run(
    codec: PostgresCodec, chunks: list[bytes], accept: bytes
) -> tuple[list[Event], str | None]:
    """Decode everything; return the events and the ProtocolError's message, if any.

    The bytes handed out by ``take_consumed`` must be a prefix of the input, and
    end with the exact encoding of the message just returned (before it may come
    messages the codec passed through without returning them).
    """
    events: list[Event] = []
    data = b"".join(chunks)
    forwarded = 0
    try:
        for chunk in [*chunks, b""]:
            codec.receive_data(chunk)
            while True:
                event = codec.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    forwarded = _check_forwarded(codec.take_consumed(), data, forwarded)
                    if event is NEED_DATA:
                        break
                    events.append(event)
                    return events, None
                events.append(event)
                consumed = codec.take_consumed()
                forwarded = _check_forwarded(consumed, data, forwarded)
                if isinstance(event, SSLResponse):
                    expected = accept if event.accepted else b"N"
                else:
                    expected = event.encode()  # type: ignore[union-attr]
                if not consumed.endswith(expected) or (
                    not codec.pass_through and consumed != expected
                ):
                    raise AssertionError(
                        f"{event!r} re-encodes to {expected!r}, received as {consumed!r}"
                    )
                _exercise(event)
    except ProtocolError as exc:
        if not isinstance(exc.message, str) or not exc.code:
            raise AssertionError(f"malformed ProtocolError {exc!r}") from exc
        return events, exc.message
    raise AssertionError("the codec never reported the end of the stream")


def _check_forwarded(consumed: bytes, data: bytes, forwarded: int) -> int:
    if data[forwarded : forwarded + len(consumed)] != consumed:
        raise AssertionError(f"take_consumed returned {consumed!r}, not the next input bytes")
    return forwarded + len(consumed)


def _bulk(make_codec: Callable[[], PostgresCodec]) -> PostgresCodec:
    codec = make_codec()
    codec.passing_bulk()
    return codec


def _not_bulk(events: list[Event], role: Role) -> list[Event]:
    bulk = (CopyData,) if role is Role.SERVER else (CopyData, be.DataRow)
    return [event for event in events if not isinstance(event, bulk)]


def _before_encryption(events: list[Event]) -> list[Event]:
    """Events before the first encryption request or answer.

    What follows such a message legitimately depends on chunking: bytes arriving
    together with it are refused, bytes arriving after it are the next message.
    """
    for index, event in enumerate(events):
        if isinstance(event, _ENCRYPTION_EVENTS):
            return events[:index]
    return events


def TestOneInput(data: bytes) -> None:
    chunks = _chunks(data)
    for make_codec, accept in CODECS:
        whole_events, whole_error = _run(make_codec(), [data] if data else [], accept)
        split_events, split_error = _run(make_codec(), chunks, accept)
        if _before_encryption(whole_events) != _before_encryption(split_events):
            raise AssertionError(
                f"{make_codec.__name__}: chunking changed the messages:\n"
                f"  whole: {whole_events!r} ({whole_error})\n"
                f"  split: {split_events!r} ({split_error})"
            )
        encrypted = any(isinstance(e, _ENCRYPTION_EVENTS) for e in whole_events + split_events)
        if not encrypted and whole_error != split_error:
            raise AssertionError(
                f"{make_codec.__name__}: chunking changed the outcome: "
                f"{whole_error!r} != {split_error!r}"
            )
        bulk = _bulk(make_codec)
        bulk_events, bulk_error = _run(bulk, chunks, accept)
        if (bulk_events, bulk_error) != (_not_bulk(split_events, bulk.role), split_error):
            raise AssertionError(
                f"{make_codec.__name__}: passing bulk messages changed the others:\n"
                f"  all:  {split_events!r} ({split_error})\n"
                f"  bulk: {bulk_events!r} ({bulk_error})"
            )


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
