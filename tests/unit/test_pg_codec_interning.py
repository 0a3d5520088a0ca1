"""Repeated messages are decoded once per codec, and never to the wrong message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.codec import ProtocolError
from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres.codec import INTERNED_ENTRIES, PostgresCodec, Role


def _server_codec() -> PostgresCodec:
    codec = PostgresCodec(Role.SERVER)
    codec.receive_data(fe.StartupMessage((("user", "u"), ("database", "d"))).encode())
    assert isinstance(codec.next_event(), fe.StartupMessage)
    return codec


def _decode_all(codec: PostgresCodec, data: bytes) -> list[object]:
    codec.receive_data(data)
    messages, closed = codec.drain()
    assert not closed
    return list(messages)


def test_a_repeated_round_trip_is_decoded_once() -> None:
    codec = _server_codec()
    round_trip = (
        fe.Parse("", "SELECT $1::int", (23,)).encode()
        + fe.Bind("", "", (0,), (b"1",), (0,)).encode()
        + fe.Describe("P", "").encode()
        + fe.Execute("", 0).encode()
        + fe.Sync().encode()
    )
    first = _decode_all(codec, round_trip)
    second = _decode_all(codec, round_trip)
    assert first == second
    kinds = [type(message) for message in first]
    for message, again in zip(first, second, strict=True):
        # Parse, Describe, Execute and Sync are shared; Bind (parameter values) is not.
        assert (message is again) == (type(message) is not fe.Bind), kinds


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(
        st.sampled_from([f"SELECT {n}" for n in range(INTERNED_ENTRIES * 2)]),
        min_size=1,
        max_size=INTERNED_ENTRIES * 4,
    )
)
def test_each_message_decodes_to_itself_however_many_distinct_ones_come(
    texts: list[str],
) -> None:
    codec = _server_codec()
    backend = PostgresCodec(Role.CLIENT)
    for text in texts:
        (parse,) = _decode_all(codec, fe.Parse("s", text, ()).encode())
        assert parse == fe.Parse("s", text, ())
        tag = be.CommandComplete(f"{text.split()[1]} 1")
        (complete,) = _decode_all(backend, tag.encode())
        assert complete == tag


def test_a_malformed_message_is_refused_every_time() -> None:
    bad_execute = b"E\x00\x00\x00\x06\x00\x00"  # portal name, then a truncated row limit
    for _ in range(3):
        codec = _server_codec()
        with pytest.raises(ProtocolError):
            _decode_all(codec, bad_execute)
