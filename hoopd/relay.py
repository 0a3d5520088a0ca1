"""The one seam where sockets meet codecs: byte streams and the pump runner.

Two stream kinds implement :class:`ByteStream`:

* :class:`SocketByteStream` drives a non-blocking socket directly with
  ``trio.lowlevel.wait_readable`` / ``wait_writable``. trio's own ``SocketStream``
  adds a scheduling round trip to every call, which measured here as a quarter of
  a proxy's CPU per statement; this class tries the system call first and waits
  only when the kernel has nothing, yielding every few immediate successes so a
  bulk transfer cannot starve other sessions.
* :class:`TrioByteStream` adapts any ``trio.abc.Stream`` (a TLS ``SSLStream``).

Each stream has exactly one reader and one writer task at a time; protocol
engines uphold that by writing to a stream only from the pump that owns it.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

RECEIVE_SIZE = 65536
KEEPALIVE_IDLE_SECONDS = 60
KEEPALIVE_INTERVAL_SECONDS = 10
KEEPALIVE_PROBES = 6
# After this many calls that completed without waiting, yield to the scheduler once.
_YIELD_EVERY = 16
_GRACEFUL_CLOSE_SECONDS = 1.0


class ByteStream(Protocol):
    async def receive_some(self) -> bytes:
        """The next bytes from the peer; ``b""`` at end of stream."""
        ...

    async def send_all(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


def keep_alive(sock: socket.socket) -> None:
    """Have the kernel probe the peer of a TCP connection that has been silent for
    :data:`KEEPALIVE_IDLE_SECONDS`, every :data:`KEEPALIVE_INTERVAL_SECONDS`, and
    reset the connection after :data:`KEEPALIVE_PROBES` unanswered probes. So a peer
    whose host vanished (powered off, cut off) is noticed within about two minutes
    and its session ends, instead of holding its other side (a database backend,
    an sshd session) forever. A live peer that is merely quiet answers the probes
    in its kernel and is never disturbed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECONDS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECONDS),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):  # Linux has all three; others keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class SocketByteStream:
    """A connected non-blocking TCP socket as a :class:`ByteStream`, with Nagle off
    and keep-alive probes on (:func:`keep_alive`)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            keep_alive(sock)
        self.socket = sock
        # trio looks the descriptor up on every wait when handed the socket object.
        self._fd = sock.fileno()
        self._streak = 0
        # After a short read the socket is drained, and request/response traffic
        # will make the next recv fail with EAGAIN: wait for readiness first then,
        # saving that system call; after a full read, try the call first.
        self._drained = True

    def _yield_due(self) -> bool:
        """Count a call that completed without waiting; True once every few of them."""
        self._streak += 1
        if self._streak < _YIELD_EVERY:
            return False
        self._streak = 0
        return True

    async def receive_some(self) -> bytes:
        if self._drained:
            self._streak = 0
            await trio.lowlevel.wait_readable(self._fd)
        while True:
            try:
                data = self.socket.recv(RECEIVE_SIZE)
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(self._fd)
                continue
            except (ConnectionResetError, BrokenPipeError):
                return b""
            self._drained = len(data) < RECEIVE_SIZE
            if not self._drained and self._yield_due():
                await trio.lowlevel.checkpoint()
            return data

    async def send_all(self, data: bytes) -> None:
        try:
            sent = self.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if sent == len(data):  # the common case: the kernel took it all at once
            if self._yield_due():
                await trio.lowlevel.checkpoint()
            return
        await self._send_rest(memoryview(data)[sent:])

    async def _send_rest(self, view: memoryview) -> None:
        try:
            while view:
                try:
                    sent = self.socket.send(view)
                except BlockingIOError:
                    self._streak = 0
                    await trio.lowlevel.wait_writable(self._fd)
                    continue
                view = view[sent:]
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        finally:
            view.release()
        if self._yield_due():
            await trio.lowlevel.checkpoint()

    def to_trio_stream(self) -> trio.SocketStream:
        """Hand the socket to trio (to wrap it in TLS); this object must not be used after."""
        return trio.SocketStream(trio.socket.from_stdlib_socket(self.socket))

    async def aclose(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            trio.lowlevel.notify_closing(self.socket)
        self.socket.close()
        await trio.lowlevel.checkpoint()


class TrioByteStream:
    """Any trio stream (in practice a TLS ``SSLStream``) as a :class:`ByteStream`."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def receive_some(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def aclose(self) -> None:
        # A graceful close sends TLS close_notify, which some clients (libpq's
        # encrypted cancel) insist on; a peer that stalls it is cut off.
        with trio.move_on_after(_GRACEFUL_CLOSE_SECONDS) as scope:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self.stream.aclose()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.stream)


PEER_CHECK_SECONDS = 0.5


def fileno_of(stream: ByteStream) -> int | None:
    """The socket under ``stream`` (plain or TLS), if it has one."""
    if isinstance(stream, SocketByteStream):
        return stream.socket.fileno()
    transport = getattr(getattr(stream, "stream", None), "transport_stream", None)
    sock = getattr(transport, "socket", None)
    return sock.fileno() if sock is not None else None


async def wait_peer_gone(stream: ByteStream) -> None:
    """Return once the peer has closed its side or the connection broke.

    For a task that is not reading the stream (a command waiting for approval):
    checks every :data:`PEER_CHECK_SECONDS` with ``POLLRDHUP``, which reports the
    peer's close even when unread data is still queued. Without a socket it waits
    forever.
    """
    fd = fileno_of(stream)
    if fd is None:
        await trio.sleep_forever()
        return
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    while not poller.poll(0):
        await trio.sleep(PEER_CHECK_SECONDS)


async def connect_tcp(host: str, port: int) -> SocketByteStream:
    """Open a TCP connection; raises ``OSError`` when the target cannot be reached."""
    stream = await trio.open_tcp_stream(host, port)
    raw = stream.socket
    sock = socket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    return SocketByteStream(sock)


async def run_pumps(*pumps: Callable[[], Awaitable[None]]) -> None:
    """Run one pump per direction in one nursery; when any returns, stop them all.

    A pump returns when its direction is finished (the peer closed, or the session
    must end); the others are cancelled so the connection lives and dies as a unit.
    Exceptions propagate (wrapped by trio in an ExceptionGroup).
    """
    async with trio.open_nursery() as nursery:

        async def run_then_stop(pump: Callable[[], Awaitable[None]]) -> None:
            await pump()
            nursery.cancel_scope.cancel()

        for pump in pumps:
            nursery.start_soon(run_then_stop, pump)
