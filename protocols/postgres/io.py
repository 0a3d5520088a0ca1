"""Reading whole messages during handshakes, where one message at a time is enough."""

from __future__ import annotations

from hoopd.codec import NEED_DATA, ProtocolError
from hoopd.relay import ByteStream

from .codec import CONNECTION_CLOSED, Message, PostgresCodec


async def read_message(stream: ByteStream, codec: PostgresCodec) -> Message:
    """The next message from ``stream``; raises ``ProtocolError`` if the peer closes first."""
    while True:
        event = codec.next_event()
        if event is CONNECTION_CLOSED:
            raise ProtocolError("the peer closed the connection during the handshake")
        if event is not NEED_DATA:
            codec.drop_consumed()
            return event  # type: ignore[return-value]
        codec.receive_data(await stream.receive_some())
