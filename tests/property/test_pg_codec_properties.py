"""Properties of the PostgreSQL codec, checked with Hypothesis.

Run longer with ``HYPOTHESIS_PROFILE=deep`` (see conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from hypothesis import assume, given, note
from hypothesis import strategies as st

from hoopd.codec import NEED_DATA, ProtocolError
from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres import wire
from hoopd.protocols.postgres.bidirectional import CopyData, Unknown
from hoopd.protocols.postgres.codec import (
    _BACKEND_DECODERS,
    _FRONTEND_DECODERS,
    BackendMessage,
    ConnectionClosed,
    Event,
    FrontendMessage,
    PostgresCodec,
    Role,
    SSLResponse,
)
from tests.property.strategies_pg import (
    BACKEND_MESSAGES,
    MODELLED_BACKEND_TAGS,
    STARTUP_PHASE_MESSAGES,
    TYPED_FRONTEND_MESSAGES,
    binds,
    chunkings,
    data_rows,
    row_descriptions,
    startup_messages,
)

STARTUP = fe.StartupMessage((("user", "u"), ("database", "d")))


def _encode(message: FrontendMessage | BackendMessage) -> bytes:
    assert not isinstance(message, SSLResponse)
    return message.encode()


def _server(started: bool) -> PostgresCodec:
    codec = PostgresCodec(Role.SERVER)
    if started:
        codec.receive_data(STARTUP.encode())
        assert codec.next_event() == STARTUP
        codec.drop_consumed()
    return codec


def _run(
    codec: PostgresCodec, chunks: list[bytes], take_each: Callable[[int], bool]
) -> tuple[list[Event], bytes]:
    """Feed ``chunks`` then end of stream; take consumed bytes after NEED_DATA and,
    when ``take_each(n)``, also right after the n-th message."""
    events: list[Event] = []
    taken: list[bytes] = []
    for chunk in [*chunks, b""]:
        codec.receive_data(chunk)
        while True:
            event = codec.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if isinstance(event, ConnectionClosed):
                break
            if take_each(len(events)):
                taken.append(codec.take_consumed())
        taken.append(codec.take_consumed())
    return events, b"".join(taken)


def _decode_one(codec: PostgresCodec, frame: bytes) -> Event:
    codec.receive_data(frame)
    event = codec.next_event()
    assert codec.next_event() is NEED_DATA
    assert codec.take_consumed() == frame
    return event


# ------------------------------------------------------------ (1) round trip


@given(STARTUP_PHASE_MESSAGES)
def test_startup_phase_messages_round_trip(message: FrontendMessage) -> None:
    assert _decode_one(_server(started=False), _encode(message)) == message


@given(TYPED_FRONTEND_MESSAGES)
def test_frontend_messages_round_trip(message: FrontendMessage) -> None:
    assert _decode_one(_server(started=True), _encode(message)) == message


@given(BACKEND_MESSAGES)
def test_backend_messages_round_trip(message: BackendMessage) -> None:
    assert _decode_one(PostgresCodec(Role.CLIENT), _encode(message)) == message


@given(st.lists(st.one_of(st.none(), st.binary(max_size=50)), max_size=20).map(tuple))
def test_data_row_values_round_trip(values: tuple[bytes | None, ...]) -> None:
    assert be.DataRow.from_values(values).values() == values


# ------------------------------------------------------------ (2) chunking


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[list[FrontendMessage], bytes]:
    """What a client sends: optionally an SSLRequest, a StartupMessage, typed messages."""
    messages: list[FrontendMessage] = []
    request = draw(st.sampled_from([None, fe.SSLRequest(), fe.GSSENCRequest()]))
    if request is not None:
        messages.append(request)
    messages.append(draw(startup_messages))
    messages.extend(draw(st.lists(TYPED_FRONTEND_MESSAGES, max_size=12)))
    return messages, b"".join(_encode(m) for m in messages)


@st.composite
def server_streams(draw: st.DrawFn) -> tuple[list[BackendMessage], bytes]:
    messages = draw(st.lists(BACKEND_MESSAGES, max_size=15))
    return messages, b"".join(_encode(m) for m in messages)


@given(client_streams(), st.data(), st.sets(st.integers(1, 20)))
def test_any_chunking_of_a_client_stream(
    stream: tuple[list[FrontendMessage], bytes], data: st.DataObject, take_after: set[int]
) -> None:
    messages, raw = stream
    if isinstance(messages[0], (fe.SSLRequest, fe.GSSENCRequest)):
        # The client waits for the answer before sending more: model that pause.
        head, raw = raw[:8], raw[8:]
        codec = _server(started=False)
        codec.receive_data(head)
        assert codec.next_event() == messages.pop(0)
        assert codec.take_consumed() == head
    else:
        codec = _server(started=False)
    chunks = data.draw(chunkings(raw), label="chunks")
    events, consumed = _run(codec, chunks, take_after.__contains__)
    assert events == [*messages, ConnectionClosed()]
    assert consumed == raw


@given(server_streams(), st.data(), st.sets(st.integers(1, 20)))
def test_any_chunking_of_a_server_stream(
    stream: tuple[list[BackendMessage], bytes], data: st.DataObject, take_after: set[int]
) -> None:
    messages, raw = stream
    chunks = data.draw(chunkings(raw), label="chunks")
    events, consumed = _run(PostgresCodec(Role.CLIENT), chunks, take_after.__contains__)
    assert events == [*messages, ConnectionClosed()]
    assert consumed == raw


@given(server_streams(), st.data())
def test_chunks_of_whole_messages_are_forwarded_as_received(
    stream: tuple[list[BackendMessage], bytes], data: st.DataObject
) -> None:
    messages, _ = stream
    frames = [_encode(m) for m in messages]
    cuts = data.draw(st.sets(st.integers(0, len(frames))), label="cuts")
    bounds = sorted({0, len(frames), *cuts})
    codec = PostgresCodec(Role.CLIENT)
    for start, end in pairwise(bounds):
        chunk = b"".join(frames[start:end])
        codec.receive_data(chunk)
        for message in messages[start:end]:
            assert codec.next_event() == message
        assert codec.next_event() is NEED_DATA
        assert codec.take_consumed() is chunk


@given(server_streams(), st.data(), st.sets(st.integers(1, 20)))
def test_passing_bulk_from_a_server_keeps_everything_else(
    stream: tuple[list[BackendMessage], bytes], data: st.DataObject, take_after: set[int]
) -> None:
    messages, raw = stream
    codec = PostgresCodec(Role.CLIENT)
    codec.passing_bulk()
    chunks = data.draw(chunkings(raw), label="chunks")
    events, consumed = _run(codec, chunks, take_after.__contains__)
    kept = [m for m in messages if not isinstance(m, CopyData | be.DataRow)]
    assert events == [*kept, ConnectionClosed()]
    assert consumed == raw


@given(st.lists(TYPED_FRONTEND_MESSAGES, max_size=12), st.data(), st.sets(st.integers(1, 20)))
def test_passing_bulk_from_a_client_keeps_everything_else(
    messages: list[FrontendMessage], data: st.DataObject, take_after: set[int]
) -> None:
    raw = b"".join(_encode(m) for m in messages)
    codec = _server(started=True)
    codec.passing_bulk()
    chunks = data.draw(chunkings(raw), label="chunks")
    events, consumed = _run(codec, chunks, take_after.__contains__)
    # Only CopyData: a client's 'D' is Describe, never passed over.
    assert events == [*(m for m in messages if not isinstance(m, CopyData)), ConnectionClosed()]
    assert consumed == raw


# ------------------------------------------------------- (3) arbitrary input


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """Valid bytes with a few bytes changed, inserted, or cut off: garbage that gets
    past the first checks more often than random bytes do."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, len(data)))
        if op == "set" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif op == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and position < len(data):
            del data[position]
        elif op == "truncate":
            del data[position:]
    return bytes(data)


def _frontend_bytes(draw_messages: st.SearchStrategy[FrontendMessage]) -> st.SearchStrategy[bytes]:
    return st.lists(draw_messages, max_size=4).map(lambda ms: b"".join(_encode(m) for m in ms))


SERVER_INPUT = st.one_of(
    st.binary(max_size=200),
    mutated(_frontend_bytes(STARTUP_PHASE_MESSAGES)),
    mutated(_frontend_bytes(TYPED_FRONTEND_MESSAGES)),
)
CLIENT_INPUT = st.one_of(
    st.binary(max_size=200),
    mutated(st.lists(BACKEND_MESSAGES, max_size=4).map(lambda ms: b"".join(map(_encode, ms)))),
)


def _consume_all(codec: PostgresCodec, chunks: list[bytes], accept: bytes = b"S") -> list[Event]:
    """Decode until the end; only ProtocolError may escape (and is swallowed here).

    Every message must re-encode to exactly the bytes handed out for it (preceded,
    when the codec passes bulk messages, by theirs), and all bytes handed out must
    be the input in order. ``accept`` is the byte by which the server accepts an
    encryption request.
    """
    events: list[Event] = []
    stream = b"".join(chunks)
    taken: list[bytes] = []
    try:
        for chunk in [*chunks, b""]:
            codec.receive_data(chunk)
            while (event := codec.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, ConnectionClosed):
                    return events
                consumed = codec.take_consumed()
                taken.append(consumed)
                if isinstance(event, SSLResponse):
                    expected = accept if event.accepted else b"N"
                else:
                    expected = event.encode()  # type: ignore[union-attr]
                if codec.pass_through:
                    assert consumed.endswith(expected)
                else:
                    assert consumed == expected
            taken.append(codec.take_consumed())
    except ProtocolError as exc:
        assert exc.code in {"08P01", "54000", "0A000"}
        assert isinstance(exc.message, str)
    finally:
        forwarded = b"".join(taken)
        assert stream.startswith(forwarded)
    return events


@given(SERVER_INPUT, st.booleans(), st.booleans(), st.data())
def test_arbitrary_client_bytes_raise_only_protocol_error(
    raw: bytes, started: bool, bulk: bool, data: st.DataObject
) -> None:
    codec = _server(started)
    codec.passing_bulk(bulk)
    _consume_all(codec, data.draw(chunkings(raw), label="chunks"))


@given(SERVER_INPUT, st.data())
def test_arbitrary_bytes_after_a_startup_prefix(raw: bytes, data: st.DataObject) -> None:
    stream = STARTUP.encode() + raw
    events = _consume_all(_server(False), data.draw(chunkings(stream), label="chunks"))
    assert events[:1] == [STARTUP]


@given(
    CLIENT_INPUT,
    st.sampled_from([None, fe.SSLRequest(), fe.GSSENCRequest()]),
    st.booleans(),
    st.data(),
)
def test_arbitrary_server_bytes_raise_only_protocol_error(
    raw: bytes,
    request: fe.SSLRequest | fe.GSSENCRequest | None,
    bulk: bool,
    data: st.DataObject,
) -> None:
    codec = PostgresCodec(Role.CLIENT)
    codec.passing_bulk(bulk)
    if request is not None:
        codec.send(request)
    accept = b"G" if isinstance(request, fe.GSSENCRequest) else b"S"
    _consume_all(codec, data.draw(chunkings(raw), label="chunks"), accept)


@given(st.binary(max_size=100), st.integers(1, 100), st.booleans())
def test_arbitrary_bytes_with_a_small_size_limit(raw: bytes, limit: int, server: bool) -> None:
    codec = PostgresCodec(Role.SERVER if server else Role.CLIENT, max_message_size=limit)
    if server:
        codec.receive_data(STARTUP.encode())
        assert codec.next_event() == STARTUP
        codec.drop_consumed()
    _consume_all(codec, [raw])


FRONTEND_TAGS = st.sampled_from(sorted(bytes([tag]) for tag in _FRONTEND_DECODERS))
BACKEND_TAGS = st.sampled_from(sorted(MODELLED_BACKEND_TAGS))


def _bodies_of(
    messages: st.SearchStrategy[FrontendMessage] | st.SearchStrategy[BackendMessage],
) -> st.SearchStrategy[bytes]:
    return messages.map(lambda m: _encode(m)[5:])


def _check_exact(decode: Callable[[], FrontendMessage | BackendMessage], frame: bytes) -> None:
    try:
        message = decode()
    except ProtocolError:
        return
    note(repr(message))
    assert _encode(message) == frame


@given(
    FRONTEND_TAGS, st.one_of(st.binary(max_size=60), mutated(_bodies_of(TYPED_FRONTEND_MESSAGES)))
)
def test_decoded_frontend_bodies_encode_back_exactly(tag: bytes, body: bytes) -> None:
    _check_exact(lambda: _FRONTEND_DECODERS[tag[0]](body), wire.frame(tag, body))


@given(BACKEND_TAGS, st.one_of(st.binary(max_size=60), mutated(_bodies_of(BACKEND_MESSAGES))))
def test_decoded_backend_bodies_encode_back_exactly(tag: bytes, body: bytes) -> None:
    assert tag[0] in _BACKEND_DECODERS
    _check_exact(lambda: _BACKEND_DECODERS[tag[0]](body), wire.frame(tag, body))


@given(st.binary(max_size=1), st.binary(max_size=60))
def test_unknown_backend_messages_encode_back_exactly(tag: bytes, body: bytes) -> None:
    assume(len(tag) == 1 and tag not in MODELLED_BACKEND_TAGS)
    frame = wire.frame(tag, body)
    event = _decode_one(PostgresCodec(Role.CLIENT), frame)
    assert event == Unknown(tag, body)
    assert isinstance(event, Unknown)
    assert event.encode() == frame


STARTUP_BODIES = st.one_of(
    st.binary(max_size=60),
    mutated(STARTUP_PHASE_MESSAGES.map(lambda m: _encode(m)[4:])),
)


@given(STARTUP_BODIES)
def test_decoded_startup_bodies_encode_back_exactly(body: bytes) -> None:
    _check_exact(lambda: fe.decode_startup(body), wire.untyped_frame(body))


# ---------------------------------------------------- (4) lazy decoding


DATA_ROW_BODIES = st.one_of(st.binary(max_size=80), mutated(data_rows.map(lambda row: row.body)))


@given(DATA_ROW_BODIES)
def test_data_row_values_raise_only_protocol_error(body: bytes) -> None:
    row = be.DataRow(body)
    try:
        values = row.values()
    except ProtocolError:
        return
    assert be.DataRow.from_values(values) == row


@given(st.one_of(st.binary(max_size=80), mutated(binds().map(lambda b: _encode(b)[5:]))))
def test_bind_decoded_params_raise_only_protocol_error(body: bytes) -> None:
    try:
        bind = fe.Bind.decode(body)
    except ProtocolError:
        return
    params = bind.decoded_params()
    assert len(params) == len(bind.params)
    for raw, decoded in zip(bind.params, params, strict=True):
        if isinstance(decoded, str):
            assert decoded.encode("utf-8", "surrogateescape") == raw
        else:
            assert decoded == raw


@given(st.one_of(st.binary(max_size=80), mutated(row_descriptions.map(lambda r: _encode(r)[5:]))))
def test_row_description_raises_only_protocol_error(body: bytes) -> None:
    try:
        description = be.RowDescription.decode(body)
    except ProtocolError:
        return
    assert description.encode()[5:] == body


COMMAND_TAGS = st.one_of(
    st.text(max_size=30),
    st.builds(
        "{} {}".format,
        st.sampled_from(["SELECT", "INSERT 0", "COPY"]),
        st.text(alphabet="0123456789", min_size=1, max_size=6000),
    ),
)


@given(COMMAND_TAGS)
def test_command_complete_row_count_never_raises(tag: str) -> None:
    count = be.CommandComplete(tag).row_count()
    assert count is None or 0 <= count < 10**20
    if count is not None:
        assert tag.endswith(str(count))


@given(st.binary(max_size=200))
def test_copy_data_carries_any_bytes(data: bytes) -> None:
    assert _decode_one(PostgresCodec(Role.CLIENT), wire.frame(b"d", data)) == CopyData(data)


# ------------------------------------------------- (4) drain == next_event loop


def _outcome_by_next_event(codec: PostgresCodec, chunks: list[bytes]) -> list[object]:
    """Per chunk: the messages, the end flag and the consumed bytes; or the error."""
    outcome: list[object] = []
    try:
        for chunk in [*chunks, b""]:
            codec.receive_data(chunk)
            messages: list[Event] = []
            closed = False
            while (event := codec.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    closed = True
                    break
                messages.append(event)
            outcome.append((messages, closed, codec.take_consumed()))
            if closed:
                break
    except ProtocolError as exc:
        outcome.append(("error", exc.message, exc.code))
    return outcome


def _outcome_by_drain(codec: PostgresCodec, chunks: list[bytes]) -> list[object]:
    outcome: list[object] = []
    try:
        for chunk in [*chunks, b""]:
            codec.receive_data(chunk)
            messages, closed = codec.drain()
            outcome.append((messages, closed, codec.take_consumed()))
            if closed:
                break
    except ProtocolError as exc:
        outcome.append(("error", exc.message, exc.code))
    return outcome


@given(st.one_of(SERVER_INPUT, client_streams().map(lambda s: s[1])), st.booleans(), st.data())
def test_drain_agrees_with_next_event_on_client_input(
    raw: bytes, bulk: bool, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(raw), label="chunks")
    by_event, by_drain = _server(False), _server(False)
    by_event.passing_bulk(bulk)
    by_drain.passing_bulk(bulk)
    assert _outcome_by_drain(by_drain, chunks) == _outcome_by_next_event(by_event, chunks)


@given(st.one_of(CLIENT_INPUT, server_streams().map(lambda s: s[1])), st.booleans(), st.data())
def test_drain_agrees_with_next_event_on_server_input(
    raw: bytes, bulk: bool, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(raw), label="chunks")
    by_event, by_drain = PostgresCodec(Role.CLIENT), PostgresCodec(Role.CLIENT)
    by_event.passing_bulk(bulk)
    by_drain.passing_bulk(bulk)
    assert _outcome_by_drain(by_drain, chunks) == _outcome_by_next_event(by_event, chunks)
