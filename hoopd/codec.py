"""The contract every protocol codec follows (the h11 shape).

A codec is sans-IO: it is fed bytes with ``receive_data`` and hands back complete,
typed messages with ``next_event``; it turns messages into bytes with ``send``.
It never touches a socket, a clock or an event loop, which is what lets the same
code be driven by the relay, by unit tests byte by byte, and by fuzzers.

Bad input from the peer raises :class:`ProtocolError` and nothing else; anything
else escaping a codec is a bug.
"""

from __future__ import annotations

from typing import Final


class NeedData:
    """Sentinel type: the codec needs more bytes before it can return a message."""

    _instance: NeedData | None = None

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class ProtocolError(Exception):
    """The peer sent something we cannot accept.

    ``message`` is safe to show to that peer (it never contains secrets);
    ``code`` is a protocol-specific error code to answer with where the protocol has one
    (for PostgreSQL, an SQLSTATE such as ``08P01``).
    """

    def __init__(self, message: str, code: str = "08P01") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class LocalProtocolError(Exception):
    """We were asked to encode something the protocol cannot express (a bug on our side)."""
