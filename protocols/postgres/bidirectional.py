"""Messages both sides send (COPY data) and the opaque carrier for anything unmodelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from . import wire


@dataclass(frozen=True, slots=True)
class CopyData:
    TAG: ClassVar[bytes] = b"d"
    data: bytes

    @classmethod
    def decode(cls, body: bytes) -> CopyData:
        return cls(body)

    def encode(self) -> bytes:
        return wire.frame(self.TAG, self.data)


class EmptyBody:
    """Shared behaviour of messages whose body is empty (Sync, CopyDone, ParseComplete...)."""

    __slots__ = ()
    TAG: ClassVar[bytes]

    @classmethod
    def decode(cls, body: bytes) -> Self:
        wire.expect_end(body, 0)
        return cls()

    def encode(self) -> bytes:
        return wire.frame(self.TAG, b"")


@dataclass(frozen=True, slots=True)
class CopyDone(EmptyBody):
    TAG: ClassVar[bytes] = b"c"


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message type this codec does not model; it travels byte-exact."""

    tag: bytes
    body: bytes

    def encode(self) -> bytes:
        return wire.frame(self.tag, self.body)
