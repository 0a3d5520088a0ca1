"""Unit tests for the sans-IO PostgreSQL codec.

Every message type is checked against bytes written out by hand from the protocol
documentation, then decoded three ways: from one chunk, one byte at a time, and with
the start of the following message already in the buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, cast

import pytest

from hoopd.codec import NEED_DATA, LocalProtocolError, ProtocolError
from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres import wire
from hoopd.protocols.postgres.bidirectional import CopyData, CopyDone, Unknown
from hoopd.protocols.postgres.codec import (
    CONNECTION_CLOSED,
    MAX_STARTUP_PACKET,
    ConnectionClosed,
    Event,
    Message,
    PostgresCodec,
    Role,
    SSLResponse,
)


class Encodable(Protocol):
    def encode(self) -> bytes: ...


Case = tuple[Encodable, bytes]

STARTUP = fe.StartupMessage((("user", "alice"), ("database", "db")))
STARTUP_BYTES = (
    b"\x00\x00\x00\x20"  # length 32
    b"\x00\x03\x00\x00"  # protocol 3.0
    b"user\x00alice\x00database\x00db\x00\x00"
)

# (message, its exact wire bytes). Lengths in the comments count the length field itself.
STARTUP_PHASE_CASES: list[Case] = [
    (fe.SSLRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (fe.GSSENCRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
    (
        fe.CancelRequest(1234, b"\x01\x02\x03\x04"),
        b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x04\xd2\x01\x02\x03\x04",
    ),
    (STARTUP, STARTUP_BYTES),
    (fe.StartupMessage((), 2), b"\x00\x00\x00\x09\x00\x03\x00\x02\x00"),
]

FRONTEND_CASES: list[Case] = [
    (fe.PasswordMessage(b"secret\x00"), b"p\x00\x00\x00\x0bsecret\x00"),
    (fe.Query("SELECT 1"), b"Q\x00\x00\x00\x0dSELECT 1\x00"),
    (fe.Query(""), b"Q\x00\x00\x00\x05\x00"),
    (
        fe.Parse("s1", "SELECT $1", (23,)),
        b"P\x00\x00\x00\x17s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17",
    ),
    (
        fe.Bind("", "s1", (1,), (b"\x00\x00\x00\x2a", None), (0,)),
        b"B\x00\x00\x00\x1e\x00s1\x00"
        b"\x00\x01\x00\x01"  # one parameter format: binary
        b"\x00\x02"  # two parameters
        b"\x00\x00\x00\x04\x00\x00\x00\x2a"
        b"\xff\xff\xff\xff"  # NULL
        b"\x00\x01\x00\x00",  # one result format: text
    ),
    (fe.Execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
    (fe.Execute("p", 10), b"E\x00\x00\x00\x0ap\x00\x00\x00\x00\x0a"),
    (fe.Describe("S", "s1"), b"D\x00\x00\x00\x08Ss1\x00"),
    (fe.Close("P", "p"), b"C\x00\x00\x00\x07Pp\x00"),
    (fe.Sync(), b"S\x00\x00\x00\x04"),
    (fe.Flush(), b"H\x00\x00\x00\x04"),
    (fe.Terminate(), b"X\x00\x00\x00\x04"),
    (
        fe.FunctionCall(1598, (1,), (b"\x00\x00\x00\x01",), 1),
        b"F\x00\x00\x00\x18\x00\x00\x06\x3e\x00\x01\x00\x01\x00\x01"
        b"\x00\x00\x00\x04\x00\x00\x00\x01\x00\x01",
    ),
    (fe.CopyFail("boom"), b"f\x00\x00\x00\x09boom\x00"),
    (CopyData(b"1\t2\n"), b"d\x00\x00\x00\x081\t2\n"),
    (CopyDone(), b"c\x00\x00\x00\x04"),
]

BACKEND_CASES: list[Case] = [
    (be.Authentication(be.AUTH_OK), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
    (be.Authentication(be.AUTH_MD5, b"salt"), b"R\x00\x00\x00\x0c\x00\x00\x00\x05salt"),
    (
        be.Authentication(be.AUTH_SASL, b"SCRAM-SHA-256\x00\x00"),
        b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
    ),
    (
        be.BackendKeyData(4242, b"\xde\xad\xbe\xef"),
        b"K\x00\x00\x00\x0c\x00\x00\x10\x92\xde\xad\xbe\xef",
    ),
    (
        be.ParameterStatus("client_encoding", "UTF8"),
        b"S\x00\x00\x00\x19client_encoding\x00UTF8\x00",
    ),
    (be.ReadyForQuery("I"), b"Z\x00\x00\x00\x05I"),
    (
        be.RowDescription((be.FieldDescription("a", 0, 0, 23, 4, -1, 0),)),
        b"T\x00\x00\x00\x1a\x00\x01a\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
    ),
    (
        be.DataRow.from_values((b"1", None)),
        b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff",
    ),
    (be.CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
    (
        be.ErrorResponse((("S", "ERROR"), ("C", "42P01"), ("M", "nope"))),
        b"E\x00\x00\x00\x19SERROR\x00C42P01\x00Mnope\x00\x00",
    ),
    (be.NoticeResponse((("S", "NOTICE"),)), b"N\x00\x00\x00\x0dSNOTICE\x00\x00"),
    (
        be.NotificationResponse(7, "ch", "hi"),
        b"A\x00\x00\x00\x0e\x00\x00\x00\x07ch\x00hi\x00",
    ),
    (
        be.ParameterDescription((23, 25)),
        b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19",
    ),
    (be.CopyResponse(b"G", 0, (0, 0)), b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00"),
    (be.CopyResponse(b"H", 1, ()), b"H\x00\x00\x00\x07\x01\x00\x00"),
    (be.CopyResponse(b"W", 0, (1,)), b"W\x00\x00\x00\x09\x00\x00\x01\x00\x01"),
    (
        be.FunctionCallResponse(b"\x00\x00\x00\x01"),
        b"V\x00\x00\x00\x0c\x00\x00\x00\x04\x00\x00\x00\x01",
    ),
    (be.FunctionCallResponse(None), b"V\x00\x00\x00\x08\xff\xff\xff\xff"),
    (
        be.NegotiateProtocolVersion(0, ("_pq_.x",)),
        b"v\x00\x00\x00\x13\x00\x00\x00\x00\x00\x00\x00\x01_pq_.x\x00",
    ),
    (be.EmptyQueryResponse(), b"I\x00\x00\x00\x04"),
    (be.ParseComplete(), b"1\x00\x00\x00\x04"),
    (be.BindComplete(), b"2\x00\x00\x00\x04"),
    (be.CloseComplete(), b"3\x00\x00\x00\x04"),
    (be.NoData(), b"n\x00\x00\x00\x04"),
    (be.PortalSuspended(), b"s\x00\x00\x00\x04"),
    (CopyData(b"row\n"), b"d\x00\x00\x00\x08row\n"),
    (CopyDone(), b"c\x00\x00\x00\x04"),
    (Unknown(b"?", b"xyz"), b"?\x00\x00\x00\x07xyz"),
]

# A long message to follow each case, so that a tail cut anywhere is really partial.
FRONTEND_FOLLOWER = fe.Parse("next", "SELECT * FROM t WHERE a = $1", (25,))
BACKEND_FOLLOWER = be.DataRow.from_values((b"follow", None, b"x" * 20))


def _case_id(case: Case) -> str:
    return type(case[0]).__name__


def server_codec(*, started: bool = False) -> PostgresCodec:
    """A codec facing a client; with ``started``, past the StartupMessage."""
    codec = PostgresCodec(Role.SERVER)
    if started:
        codec.receive_data(STARTUP_BYTES)
        assert codec.next_event() == STARTUP
        codec.drop_consumed()
    return codec


def client_codec() -> PostgresCodec:
    return PostgresCodec(Role.CLIENT)


def drain(codec: PostgresCodec) -> list[Event]:
    """Every event up to and including the first NEED_DATA or ConnectionClosed."""
    events: list[Event] = []
    while True:
        event = codec.next_event()
        events.append(event)
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            return events


def feed(codec: PostgresCodec, chunks: Iterable[bytes]) -> tuple[list[Event], bytes]:
    """Feed chunks one by one; returns the messages decoded and the consumed bytes."""
    messages: list[Event] = []
    consumed = []
    for chunk in chunks:
        codec.receive_data(chunk)
        messages.extend(e for e in drain(codec) if e is not NEED_DATA)
        consumed.append(codec.take_consumed())
    return messages, b"".join(consumed)


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ------------------------------------------------------------- every message


@pytest.mark.parametrize("case", STARTUP_PHASE_CASES + FRONTEND_CASES + BACKEND_CASES, ids=_case_id)
def test_encode_matches_the_documented_bytes(case: Case) -> None:
    message, wire_bytes = case
    assert message.encode() == wire_bytes


@pytest.mark.parametrize("case", STARTUP_PHASE_CASES + FRONTEND_CASES, ids=_case_id)
def test_client_role_sends_frontend_messages(case: Case) -> None:
    message, wire_bytes = case
    assert client_codec().send(cast(Message, message)) == wire_bytes


@pytest.mark.parametrize("case", BACKEND_CASES, ids=_case_id)
def test_server_role_sends_backend_messages(case: Case) -> None:
    message, wire_bytes = case
    assert server_codec(started=True).send(cast(Message, message)) == wire_bytes


@pytest.mark.parametrize("case", STARTUP_PHASE_CASES, ids=_case_id)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_server_decodes_startup_phase_messages(case: Case, split: bool) -> None:
    message, wire_bytes = case
    codec = server_codec()
    events, consumed = feed(codec, bytewise(wire_bytes) if split else [wire_bytes])
    assert events == [message]
    assert consumed == wire_bytes
    assert codec.buffered == 0


@pytest.mark.parametrize("case", FRONTEND_CASES, ids=_case_id)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_server_decodes_frontend_messages(case: Case, split: bool) -> None:
    message, wire_bytes = case
    codec = server_codec(started=True)
    events, consumed = feed(codec, bytewise(wire_bytes) if split else [wire_bytes])
    assert events == [message]
    assert consumed == wire_bytes


@pytest.mark.parametrize("case", BACKEND_CASES, ids=_case_id)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_client_decodes_backend_messages(case: Case, split: bool) -> None:
    message, wire_bytes = case
    codec = client_codec()
    events, consumed = feed(codec, bytewise(wire_bytes) if split else [wire_bytes])
    assert events == [message]
    assert consumed == wire_bytes


def _check_with_partial_tail(
    codec: PostgresCodec, message: Encodable, wire_bytes: bytes, follower: Encodable
) -> None:
    """``message`` arrives with a cut-off start of ``follower`` behind it, for every cut."""
    tail = follower.encode()
    for cut in range(1, len(tail)):
        codec.receive_data(wire_bytes + tail[:cut])
        assert codec.next_event() == message
        assert codec.next_event() is NEED_DATA
        assert codec.buffered == cut
        assert codec.take_consumed() == wire_bytes
        codec.receive_data(tail[cut:])
        assert codec.next_event() == follower
        assert codec.next_event() is NEED_DATA
        assert codec.take_consumed() == tail
        assert codec.buffered == 0


@pytest.mark.parametrize("case", FRONTEND_CASES, ids=_case_id)
def test_frontend_message_with_partial_next_message(case: Case) -> None:
    _check_with_partial_tail(server_codec(started=True), *case, FRONTEND_FOLLOWER)


@pytest.mark.parametrize("case", BACKEND_CASES, ids=_case_id)
def test_backend_message_with_partial_next_message(case: Case) -> None:
    _check_with_partial_tail(client_codec(), *case, BACKEND_FOLLOWER)


def test_startup_message_with_partial_first_typed_message() -> None:
    codec = server_codec()
    query = fe.Query("SELECT version()").encode()
    codec.receive_data(STARTUP_BYTES + query[:7])
    assert codec.next_event() == STARTUP
    assert codec.next_event() is NEED_DATA
    assert codec.take_consumed() == STARTUP_BYTES
    codec.receive_data(query[7:])
    assert codec.next_event() == fe.Query("SELECT version()")
    assert codec.take_consumed() == query


@pytest.mark.parametrize("request_message", [fe.SSLRequest(), fe.GSSENCRequest()])
def test_startup_follows_a_refused_encryption_request(request_message: Encodable) -> None:
    codec = server_codec()
    codec.receive_data(request_message.encode())
    assert codec.next_event() == request_message
    assert codec.send_ssl_response(False) == b"N"
    for byte in STARTUP_BYTES[:-1]:
        codec.receive_data(bytes([byte]))
        assert codec.next_event() is NEED_DATA
    codec.receive_data(STARTUP_BYTES[-1:])
    assert codec.next_event() == STARTUP
    assert codec.take_consumed() == request_message.encode() + STARTUP_BYTES


def test_server_decodes_a_whole_extended_protocol_batch() -> None:
    messages = [case[0] for case in FRONTEND_CASES]
    stream = b"".join(case[1] for case in FRONTEND_CASES)
    codec = server_codec(started=True)
    events, consumed = feed(codec, [stream])
    assert events == messages
    assert consumed == stream


@pytest.mark.parametrize("answer", [b"S", b"N"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_client_reads_the_answer_to_its_ssl_request(answer: bytes, split: bool) -> None:
    codec = client_codec()
    assert codec.send(fe.SSLRequest()) == STARTUP_PHASE_CASES[0][1]
    assert codec.next_event() is NEED_DATA
    codec.receive_data(answer)
    assert codec.next_event() == SSLResponse(accepted=answer == b"S")
    assert codec.take_consumed() == answer
    # After the answer the codec reads ordinary backend messages, tag 'N' included.
    codec.send(STARTUP)
    notice = be.NoticeResponse((("S", "NOTICE"),)).encode()
    stream = notice + be.Authentication(be.AUTH_OK).encode()
    events, consumed = feed(codec, bytewise(stream) if split else [stream])
    assert events == [be.NoticeResponse((("S", "NOTICE"),)), be.Authentication(be.AUTH_OK)]
    assert consumed == stream


# ---------------------------------------------------------- take / drop


def test_take_consumed_returns_the_received_object_for_whole_messages() -> None:
    chunk = fe.Query("SELECT 1").encode() + fe.Sync().encode()
    codec = server_codec(started=True)
    codec.receive_data(chunk)
    assert drain(codec) == [fe.Query("SELECT 1"), fe.Sync(), NEED_DATA]
    assert codec.take_consumed() is chunk
    assert codec.take_consumed() == b""


def test_take_consumed_returns_the_received_object_for_each_chunk() -> None:
    codec = client_codec()
    for case in BACKEND_CASES:
        chunk = case[1] + BACKEND_FOLLOWER.encode()
        codec.receive_data(chunk)
        assert drain(codec) == [case[0], BACKEND_FOLLOWER, NEED_DATA]
        assert codec.take_consumed() is chunk


def test_take_consumed_stops_at_the_last_whole_message() -> None:
    first, second, third = (fe.Query(f"SELECT {i}").encode() for i in range(3))
    codec = server_codec(started=True)
    codec.receive_data(first + second + third[:4])
    assert drain(codec) == [fe.Query("SELECT 0"), fe.Query("SELECT 1"), NEED_DATA]
    assert codec.take_consumed() == first + second
    codec.receive_data(third[4:])
    assert drain(codec) == [fe.Query("SELECT 2"), NEED_DATA]
    assert codec.take_consumed() == third


def test_take_consumed_between_messages_of_one_chunk() -> None:
    frames = [case[1] for case in BACKEND_CASES]
    codec = client_codec()
    codec.receive_data(b"".join(frames))
    for case in BACKEND_CASES:
        assert codec.next_event() == case[0]
        assert codec.take_consumed() == case[1]
    assert codec.next_event() is NEED_DATA
    assert codec.take_consumed() == b""


def test_take_consumed_keeps_messages_decoded_before_more_data_arrived() -> None:
    sync = fe.Sync().encode()
    query = fe.Query("SELECT 1").encode()
    codec = server_codec(started=True)
    codec.receive_data(sync)
    assert codec.next_event() == fe.Sync()
    codec.receive_data(query[:3])  # before the caller took the Sync's bytes
    assert codec.next_event() is NEED_DATA
    codec.receive_data(query[3:])
    assert codec.next_event() == fe.Query("SELECT 1")
    assert codec.take_consumed() == sync + query


def test_drop_consumed_forgets_replaced_messages() -> None:
    query, sync, flush = fe.Query("SELECT 1"), fe.Sync(), fe.Flush()
    codec = server_codec(started=True)
    codec.receive_data(query.encode() + sync.encode() + flush.encode())
    assert codec.next_event() == query
    assert codec.take_consumed() == query.encode()
    assert codec.next_event() == sync
    codec.drop_consumed()  # the proxy sends something else instead of the Sync
    assert codec.next_event() == flush
    assert codec.take_consumed() == flush.encode()


def test_drop_consumed_across_chunks() -> None:
    codec = client_codec()
    ready = be.ReadyForQuery("I").encode()
    codec.receive_data(ready[:2])
    assert codec.next_event() is NEED_DATA
    codec.receive_data(ready[2:] + ready)
    assert codec.next_event() == be.ReadyForQuery("I")
    codec.drop_consumed()
    assert codec.next_event() == be.ReadyForQuery("I")
    assert codec.next_event() is NEED_DATA
    assert codec.take_consumed() == ready
    assert codec.buffered == 0


def test_a_huge_message_in_small_chunks_is_joined_once(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = bytes(range(256)) * (50 * 1024 * 1024 // 256)
    frame = CopyData(payload).encode()
    after = fe.Sync().encode()
    codec = server_codec(started=True)
    joins: list[int] = []
    original = codec._join_if_available

    def counting_join(needed: int) -> bool:
        joined = original(needed)
        if joined:
            joins.append(needed)
        return joined

    monkeypatch.setattr(codec, "_join_if_available", counting_join)
    step = 64 * 1024
    stream = frame + after
    events: list[Event] = []
    for start in range(0, len(stream), step):
        codec.receive_data(stream[start : start + step])
        events.extend(e for e in drain(codec) if e is not NEED_DATA)
    assert len(events) == 2
    assert isinstance(events[0], CopyData)
    assert events[0].data == payload
    assert events[1] == fe.Sync()
    assert joins == [len(frame)]  # one copy of the message, not one per chunk
    assert codec.take_consumed() == stream


# ------------------------------------------------------ bulk pass-through

COPY_ROWS = CopyData(b"1\tone\n").encode() + CopyData(b"2\ttwo\n").encode()
DATA_ROWS = be.DataRow.from_values((b"1",)).encode() + be.DataRow.from_values((None,)).encode()


def test_passed_bulk_bytes_are_handed_out_before_a_refused_header() -> None:
    codec = PostgresCodec(Role.CLIENT, max_message_size=1024)
    codec.passing_bulk()
    codec.receive_data(DATA_ROWS + b"d" + wire.UINT32.pack(1025))
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "54000"
    assert codec.take_consumed() == DATA_ROWS


def test_passed_bulk_bytes_are_handed_out_at_a_clean_close() -> None:
    codec = server_codec(started=True)
    codec.passing_bulk()
    codec.receive_data(COPY_ROWS)
    assert codec.next_event() is NEED_DATA
    codec.receive_data(b"")
    assert codec.next_event() is CONNECTION_CLOSED
    assert codec.take_consumed() == COPY_ROWS


def test_eof_inside_a_passed_message_is_an_error() -> None:
    codec = client_codec()
    codec.passing_bulk()
    codec.receive_data(DATA_ROWS + DATA_ROWS[:7])
    assert codec.next_event() is NEED_DATA
    assert codec.take_consumed() == DATA_ROWS
    codec.receive_data(b"")
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_a_huge_passed_message_is_joined_once(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = CopyData(b"\x01" * (8 * 1024 * 1024)).encode()
    stream = frame + be.ReadyForQuery("I").encode()
    codec = client_codec()
    codec.passing_bulk()
    joins: list[int] = []
    original = codec._join_if_available

    def counting_join(needed: int) -> bool:
        joined = original(needed)
        if joined:
            joins.append(needed)
        return joined

    monkeypatch.setattr(codec, "_join_if_available", counting_join)
    events: list[Event] = []
    forwarded = []
    for start in range(0, len(stream), 64 * 1024):
        codec.receive_data(stream[start : start + 64 * 1024])
        events.extend(e for e in drain(codec) if e is not NEED_DATA)
        forwarded.append(codec.take_consumed())
    assert events == [be.ReadyForQuery("I")]
    assert joins == [len(frame)]
    assert b"".join(forwarded) == stream


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize("make_codec", [lambda: server_codec(started=True), client_codec])
def test_oversized_length_is_refused_from_the_header_alone(
    make_codec: Callable[[], PostgresCodec],
) -> None:
    codec = make_codec()
    codec.receive_data(b"d" + wire.UINT32.pack(0xFFFFFFFF))
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "54000"


def test_the_size_limit_is_configurable_and_inclusive() -> None:
    codec = PostgresCodec(Role.CLIENT, max_message_size=1024)
    codec.receive_data(CopyData(b"x" * 1020).encode())  # length field says 1024
    assert codec.next_event() == CopyData(b"x" * 1020)
    codec.receive_data(b"d" + wire.UINT32.pack(1025))  # the header, none of the body
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "54000"


@pytest.mark.parametrize("length", [0, 1, 3])
@pytest.mark.parametrize("make_codec", [lambda: server_codec(started=True), client_codec])
def test_typed_length_below_four_is_refused(
    length: int, make_codec: Callable[[], PostgresCodec]
) -> None:
    codec = make_codec()
    codec.receive_data(b"S" + wire.UINT32.pack(length) + b"\x00" * 8)
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "08P01"


@pytest.mark.parametrize("length", [0, 3, 4, 7])
def test_startup_length_too_small_for_a_code_is_refused(length: int) -> None:
    codec = server_codec()
    codec.receive_data(wire.UINT32.pack(length) + b"\x00" * 8)
    with pytest.raises(ProtocolError):
        codec.next_event()


@pytest.mark.parametrize("length", [0, 7, MAX_STARTUP_PACKET + 1])
def test_bad_startup_length_is_refused_from_the_length_alone(length: int) -> None:
    codec = server_codec()
    codec.receive_data(wire.UINT32.pack(length))
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_startup_packet_over_10000_bytes_is_refused() -> None:
    codec = server_codec()
    codec.receive_data(wire.UINT32.pack(MAX_STARTUP_PACKET + 1) + b"\x00\x03\x00\x00")
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_startup_packet_of_exactly_10000_bytes_is_accepted() -> None:
    padding = MAX_STARTUP_PACKET - len(fe.StartupMessage((("options", ""),)).encode())
    message = fe.StartupMessage((("options", "x" * padding),))
    assert len(message.encode()) == MAX_STARTUP_PACKET
    codec = server_codec()
    codec.receive_data(message.encode())
    assert codec.next_event() == message


@pytest.mark.parametrize("request_message", [fe.SSLRequest(), fe.GSSENCRequest()])
def test_bytes_after_an_encryption_request_are_refused(request_message: Encodable) -> None:
    codec = server_codec()
    codec.receive_data(request_message.encode() + STARTUP_BYTES[:1])
    with pytest.raises(ProtocolError):
        codec.next_event()


@pytest.mark.parametrize("answer", [b"S", b"N"])
def test_bytes_after_the_servers_answer_are_refused(answer: bytes) -> None:
    codec = client_codec()
    codec.send(fe.SSLRequest())
    codec.receive_data(answer + b"\x16\x03\x01")
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_bytes_after_the_servers_answer_in_a_later_chunk_are_refused() -> None:
    codec = client_codec()
    codec.send(fe.SSLRequest())
    codec.receive_data(b"S")
    codec.receive_data(b"\x16")
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_an_invalid_answer_to_an_ssl_request_is_refused() -> None:
    codec = client_codec()
    codec.send(fe.SSLRequest())
    codec.receive_data(be.ErrorResponse.build("08P01", "no").encode())
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_eof_while_awaiting_the_ssl_answer_is_a_close() -> None:
    codec = client_codec()
    codec.send(fe.SSLRequest())
    codec.receive_data(b"")
    assert codec.next_event() is CONNECTION_CLOSED


@pytest.mark.parametrize(
    "make_codec",
    [server_codec, lambda: server_codec(started=True), client_codec],
    ids=["startup", "typed", "client"],
)
def test_eof_between_messages_is_a_clean_close(make_codec: Callable[[], PostgresCodec]) -> None:
    codec = make_codec()
    codec.receive_data(b"")
    assert codec.next_event() is CONNECTION_CLOSED
    assert codec.next_event() is CONNECTION_CLOSED


def test_eof_after_whole_messages_yields_them_then_the_close() -> None:
    codec = client_codec()
    codec.receive_data(be.ReadyForQuery("I").encode())
    codec.receive_data(b"")
    assert codec.next_event() == be.ReadyForQuery("I")
    assert codec.next_event() is CONNECTION_CLOSED


@pytest.mark.parametrize("cut", [1, 4, 5, 8])
@pytest.mark.parametrize(
    "make_codec", [lambda: server_codec(started=True), client_codec], ids=["server", "client"]
)
def test_eof_in_the_middle_of_a_message_is_an_error(
    cut: int, make_codec: Callable[[], PostgresCodec]
) -> None:
    codec = make_codec()
    codec.receive_data(CopyData(b"abcdef").encode()[:cut])
    assert codec.next_event() is NEED_DATA
    codec.receive_data(b"")
    with pytest.raises(ProtocolError):
        codec.next_event()


@pytest.mark.parametrize("cut", [2, 6])
def test_eof_in_the_middle_of_a_startup_packet_is_an_error(cut: int) -> None:
    codec = server_codec()
    codec.receive_data(STARTUP_BYTES[:cut])
    codec.receive_data(b"")
    with pytest.raises(ProtocolError):
        codec.next_event()


@pytest.mark.parametrize("tag", [b"x", b"\x00", b"R", b"Z", b"1"])
def test_unknown_frontend_tag_is_refused(tag: bytes) -> None:
    codec = server_codec(started=True)
    codec.receive_data(tag + wire.UINT32.pack(4))
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "08P01"


def test_a_second_startup_message_is_refused() -> None:
    codec = server_codec(started=True)
    # Read as a typed message, the packet has tag 0x00 and a length of 0x00002000.
    codec.receive_data(STARTUP_BYTES + b"\x00" * 0x2000)
    with pytest.raises(ProtocolError):
        codec.next_event()


@pytest.mark.parametrize("tag", [b"x", b"\x00", b"\xff", b"Y", b"P"])
def test_unknown_backend_tag_travels_byte_exact(tag: bytes) -> None:
    body = bytes(range(256))
    frame = tag + wire.UINT32.pack(len(body) + 4) + body
    codec = client_codec()
    codec.receive_data(frame)
    event = codec.next_event()
    assert event == Unknown(tag, body)
    assert isinstance(event, Unknown)
    assert event.encode() == frame
    assert codec.take_consumed() is frame


@pytest.mark.parametrize("version", [(2, 0), (1, 0), (4, 0), (1234, 5677)])
def test_unsupported_protocol_versions_are_refused(version: tuple[int, int]) -> None:
    codec = server_codec()
    body = wire.UINT16.pack(version[0]) + wire.UINT16.pack(version[1]) + b"user\x00a\x00\x00"
    codec.receive_data(wire.untyped_frame(body))
    with pytest.raises(ProtocolError) as caught:
        codec.next_event()
    assert caught.value.code == "0A000"


def test_newer_minor_versions_are_decoded_for_negotiation() -> None:
    codec = server_codec()
    codec.receive_data(fe.StartupMessage((("user", "a"),), 2).encode())
    event = codec.next_event()
    assert isinstance(event, fe.StartupMessage)
    assert event.minor_version == 2
    assert event.get("user") == "a"
    assert event.get("database") is None


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x03\x00\x00user\x00alice\x00",  # no terminator
        b"\x00\x03\x00\x00user\x00alice",  # unterminated value
        b"\x00\x03\x00\x00\x00extra",  # bytes after the terminator
        b"\x04\xd2\x16\x2f\x00",  # SSLRequest with a body
        b"\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00\x00",  # cancel key too short
        b"\x04\xd2\x16\x2e\x00\x00\x00\x01" + b"k" * 257,  # cancel key too long
    ],
)
def test_malformed_startup_packets_are_refused(body: bytes) -> None:
    codec = server_codec()
    codec.receive_data(wire.untyped_frame(body))
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_data_after_a_cancel_request_is_refused() -> None:
    codec = server_codec()
    codec.receive_data(STARTUP_PHASE_CASES[2][1] + b"\x00")
    assert codec.next_event() == fe.CancelRequest(1234, b"\x01\x02\x03\x04")
    with pytest.raises(ProtocolError):
        codec.next_event()


def test_a_cancel_request_ends_the_stream() -> None:
    codec = server_codec()
    codec.receive_data(STARTUP_PHASE_CASES[2][1])
    assert codec.next_event() == fe.CancelRequest(1234, b"\x01\x02\x03\x04")
    assert codec.next_event() is NEED_DATA
    codec.receive_data(b"")
    assert codec.next_event() is CONNECTION_CLOSED


# --------------------------------------------------------------- sending


def test_send_refuses_messages_travelling_the_other_way() -> None:
    with pytest.raises(LocalProtocolError):
        server_codec().send(fe.Query("SELECT 1"))
    with pytest.raises(LocalProtocolError):
        client_codec().send(be.ReadyForQuery("I"))
    with pytest.raises(LocalProtocolError):
        client_codec().send(SSLResponse(True))
    with pytest.raises(LocalProtocolError):
        client_codec().send_ssl_response(True)


def test_both_sides_send_copy_data() -> None:
    for codec in (server_codec(started=True), client_codec()):
        assert codec.send(CopyData(b"x")) == b"d\x00\x00\x00\x05x"
        assert codec.send(CopyDone()) == b"c\x00\x00\x00\x04"


def test_server_answers_encryption_requests() -> None:
    codec = server_codec()
    assert codec.send_ssl_response(True) == b"S"
    assert codec.send_ssl_response(False) == b"N"


@pytest.mark.parametrize(
    ("request_message", "accept"), [(fe.SSLRequest(), b"S"), (fe.GSSENCRequest(), b"G")]
)
def test_server_accepts_each_encryption_request_with_its_own_byte(
    request_message: Encodable, accept: bytes
) -> None:
    codec = server_codec()
    codec.receive_data(request_message.encode())
    assert codec.next_event() == request_message
    assert codec.send_ssl_response(True) == accept
    assert codec.send_ssl_response(False) == b"N"


def test_server_answers_the_latest_encryption_request() -> None:
    codec = server_codec()
    codec.receive_data(fe.GSSENCRequest().encode())
    assert codec.next_event() == fe.GSSENCRequest()
    assert codec.send_ssl_response(False) == b"N"
    codec.receive_data(fe.SSLRequest().encode())
    assert codec.next_event() == fe.SSLRequest()
    assert codec.send_ssl_response(True) == b"S"


@pytest.mark.parametrize("answer", [b"G", b"N"])
def test_client_reads_the_answer_to_its_gssenc_request(answer: bytes) -> None:
    codec = client_codec()
    assert codec.send(fe.GSSENCRequest()) == STARTUP_PHASE_CASES[1][1]
    # Without waiting for the answer, "N" would start a NoticeResponse.
    codec.receive_data(answer)
    assert codec.next_event() == SSLResponse(accepted=answer == b"G")
    assert codec.take_consumed() == answer
    codec.receive_data(be.Authentication(be.AUTH_OK).encode())
    assert codec.next_event() == be.Authentication(be.AUTH_OK)


@pytest.mark.parametrize(
    ("request_message", "answer"), [(fe.SSLRequest(), b"G"), (fe.GSSENCRequest(), b"S")]
)
def test_client_refuses_the_answer_to_another_request(
    request_message: fe.SSLRequest | fe.GSSENCRequest, answer: bytes
) -> None:
    codec = client_codec()
    codec.send(request_message)
    codec.receive_data(answer)
    with pytest.raises(ProtocolError):
        codec.next_event()


# ------------------------------------------------- message-level decoding


def test_bind_with_more_than_32767_parameters() -> None:
    # PostgreSQL reads these counts as unsigned: up to 65535 parameters.
    bind = fe.Bind("", "bulk", (1,), (b"v",) * 40_000, ())
    parse = fe.Parse("bulk", "INSERT ...", (23,) * 40_000)
    described = be.ParameterDescription((23,) * 40_000)
    codec = server_codec(started=True)
    codec.receive_data(parse.encode() + bind.encode())
    assert codec.next_event() == parse
    assert codec.next_event() == bind
    assert bind.encode()[15:17] == b"\x9c\x40"  # the parameter count, 40000
    client = client_codec()
    client.receive_data(described.encode())
    assert client.next_event() == described


def test_bind_decoded_params_follow_the_format_rules() -> None:
    all_text = fe.Bind("", "", (), (b"1", None, b"\xff"), ())
    assert all_text.decoded_params() == ("1", None, "\udcff")
    all_binary = fe.Bind("", "", (1,), (b"\x00\x01", None), ())
    assert all_binary.decoded_params() == (b"\x00\x01", None)
    mixed = fe.Bind("", "", (0, 1), (b"a", b"b"), ())
    assert mixed.decoded_params() == ("a", b"b")


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00",  # two formats, no parameters
        b"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x03"  # two formats, three parameters
        + b"\x00\x00\x00\x00" * 3
        + b"\x00\x00",
        b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00",  # length -2
        b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00",  # value overruns
        b"\x00\x00\x00\x00\x00\x00",  # no result-format count
        b"\x00\x00\x00\x00\x00\x00\x00\x00!",  # trailing byte
        b"portal",  # unterminated name
    ],
)
def test_malformed_bind_is_refused(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        fe.Bind.decode(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00",
        b"\xff\xff",  # negative count
        b"\x00\x01",  # missing column
        b"\x00\x01\xff\xff\xff\xfe",  # length -2
        b"\x00\x01\x00\x00\x00\x09abc",  # value overruns
        b"\x00\x00!",  # trailing byte
    ],
)
def test_garbage_data_row_values_raise_protocol_error(body: bytes) -> None:
    row = be.DataRow(body)  # DataRow keeps the raw body: the error comes when asked
    with pytest.raises(ProtocolError):
        row.values()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xff",
        b"\x00\x01a\x00\x00\x00",  # field cut short
        b"\x00\x01a",  # unterminated name
        b"\x00\x00!",
    ],
)
def test_garbage_row_description_raises_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        be.RowDescription.decode(body)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("SELECT 5", 5),
        ("INSERT 0 3", 3),
        ("UPDATE 0", 0),
        ("BEGIN", None),
        ("SELECT", None),
        ("SELECT ²", None),  # a digit to str.isdigit, not to int()
        ("SELECT ٣", None),
        ("SELECT -1", None),
        ("SELECT 18446744073709551615", 2**64 - 1),
        ("SELECT " + "9" * 5000, None),  # int() refuses strings this long
    ],
)
def test_command_complete_row_count(tag: str, expected: int | None) -> None:
    assert be.CommandComplete(tag).row_count() == expected


def test_garbage_command_tag_survives_the_gateway() -> None:
    codec = client_codec()
    frame = b"C" + wire.UINT32.pack(4 + 10) + "SELECT ²".encode() + b"\x00"
    codec.receive_data(frame)
    event = codec.next_event()
    assert isinstance(event, be.CommandComplete)
    assert event.row_count() is None
    assert event.encode() == frame


def test_field_accessors() -> None:
    error = be.ErrorResponse.build("42P01", "no table", detail="d")
    assert error.named() == {
        "severity": "ERROR",
        "severity_nonlocalized": "ERROR",
        "code": "42P01",
        "message": "no table",
        "detail": "d",
    }
    sasl = be.Authentication(be.AUTH_SASL, b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")
    assert sasl.sasl_mechanisms() == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    assert fe.PasswordMessage(b"hunter2\x00").password == "hunter2"
