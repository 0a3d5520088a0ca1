"""Bulk pass-through: rows and COPY data are framed, forwarded byte-exact, not returned."""

from __future__ import annotations

from hoopd.codec import NEED_DATA
from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres.bidirectional import CopyData, CopyDone
from hoopd.protocols.postgres.codec import PostgresCodec, Role

ROWS = b"".join(be.DataRow.from_values((str(i).encode(), b"x" * i)).encode() for i in range(50))
RESULT = (
    be.RowDescription((be.FieldDescription("n", 0, 0, 23, 4, -1, 0),)).encode()
    + ROWS
    + be.CommandComplete("SELECT 50").encode()
    + be.ReadyForQuery("I").encode()
)


def drain(codec: PostgresCodec) -> list[object]:
    events: list[object] = []
    while (event := codec.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_rows_pass_through_without_being_returned() -> None:
    codec = PostgresCodec(Role.CLIENT)
    codec.passing_bulk()
    codec.receive_data(RESULT)
    events = drain(codec)
    assert [type(e) for e in events] == [be.RowDescription, be.CommandComplete, be.ReadyForQuery]
    assert codec.take_consumed() is RESULT


def test_rows_pass_through_under_any_chunking() -> None:
    for size in (1, 3, 7, 64, 1000):
        codec = PostgresCodec(Role.CLIENT)
        codec.passing_bulk()
        forwarded = []
        events: list[object] = []
        for start in range(0, len(RESULT), size):
            codec.receive_data(RESULT[start : start + size])
            events += drain(codec)
            forwarded.append(codec.take_consumed())
        assert b"".join(forwarded) == RESULT
        assert [type(e) for e in events] == [
            be.RowDescription,
            be.CommandComplete,
            be.ReadyForQuery,
        ]


def test_rows_are_returned_when_pass_through_is_off() -> None:
    codec = PostgresCodec(Role.CLIENT)
    codec.passing_bulk()
    codec.passing_bulk(False)
    codec.receive_data(RESULT)
    assert sum(isinstance(e, be.DataRow) for e in drain(codec)) == 50


def test_a_client_describe_is_never_passed_through() -> None:
    # 'D' is DataRow from a server but Describe from a client.
    codec = PostgresCodec(Role.SERVER)
    codec.receive_data(fe.StartupMessage((("user", "u"),)).encode())
    drain(codec)
    codec.take_consumed()
    codec.passing_bulk()
    stream = CopyData(b"1\tone\n").encode() + fe.Describe("S", "s1").encode() + CopyDone().encode()
    codec.receive_data(stream)
    assert drain(codec) == [fe.Describe("S", "s1"), CopyDone()]
    assert codec.take_consumed() == stream
