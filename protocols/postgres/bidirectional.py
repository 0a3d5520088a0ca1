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


_SHARED: dict[type, object] = {}


class EmptyBody:
    """Shared behaviour of messages whose body is empty (Sync, CopyDone, ParseComplete...)."""

    __slots__ = ()
    TAG: ClassVar[bytes]

    @classmethod
    def decode(cls, body: bytes) -> Self:
        wire.expect_end(body, 0)
        # These messages carry nothing: every one of a kind is the same value, so
        # one shared instance per class saves an allocation per message.
        shared = _SHARED.get(cls)
        if shared is None:
            shared = _SHARED[cls] = cls()
        return shared  # type: ignore[return-value]

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
