"""A bare byte-copy TCP proxy on trio: the floor under any trio proxy's figures.

    python bench/trio_copy_proxy.py --listen-port P --target-port Q

Listens on 127.0.0.1:P only and prints ``ready`` on stdout once listening. For each
client it opens 127.0.0.1:Q and copies bytes both ways, one task per direction, until
either side closes; then both sockets are closed. It parses nothing, authenticates no
one and records nothing. SIGTERM (or SIGINT) cancels the listener and every session,
and the process exits with status 0.

The I/O is hoopd.relay's technique, written out here so that the floor does not move
when hoopd does: raw non-blocking sockets with TCP_NODELAY, 64 KiB receives, the system
call tried first and ``trio.lowlevel.wait_readable``/``wait_writable`` awaited only when
the kernel has nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys

import trio

HOST = "127.0.0.1"
RECEIVE_SIZE = 65536
# After this many copies that completed without waiting, yield to the scheduler once,
# so one bulk transfer cannot starve the other sessions (or the SIGTERM watcher).
YIELD_EVERY = 16
BACKLOG = 512


def _tune(sock: socket.socket) -> None:
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _close(sock: socket.socket) -> None:
    # Tell trio first, so no stale registration outlives the descriptor number.
    with contextlib.suppress(OSError, ValueError):
        trio.lowlevel.notify_closing(sock)
    sock.close()


async def _connect(port: int) -> socket.socket:
    """A connected non-blocking socket to HOST:port; raises OSError if refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        _tune(sock)
        code = sock.connect_ex((HOST, port))
        if code == errno.EINPROGRESS:
            await trio.lowlevel.wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            raise OSError(code, f"connect to {HOST}:{port}: {os.strerror(code)}")
    except BaseException:
        sock.close()
        raise
    return sock


async def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy source to sink; returns at end of stream or when either socket fails."""
    streak = 0
    # After a short read the socket is drained and the next recv would most likely fail
    # with EAGAIN, so wait for readiness first then (as hoopd.relay does).
    drained = True
    while True:
        if drained:
            await trio.lowlevel.wait_readable(source)
            streak = 0
        try:
            data = source.recv(RECEIVE_SIZE)
        except BlockingIOError:
            drained = True
            continue
        except OSError:
            return
        if not data:
            return
        drained = len(data) < RECEIVE_SIZE
        view = memoryview(data)
        while view:
            try:
                view = view[sink.send(view) :]
            except BlockingIOError:
                streak = 0
                await trio.lowlevel.wait_writable(sink)
            except OSError:
                return
        streak += 1
        if streak >= YIELD_EVERY:
            streak = 0
            await trio.lowlevel.checkpoint()


async def _session(client: socket.socket, target_port: int) -> None:
    """Relay one client until either side closes; both sockets are closed on return."""
    try:
        try:
            upstream = await _connect(target_port)
        except OSError as exc:
            print(f"trio-copy: {exc}", file=sys.stderr, flush=True)
            return
        try:
            async with trio.open_nursery() as nursery:

                async def one_way(source: socket.socket, sink: socket.socket) -> None:
                    await _pump(source, sink)
                    nursery.cancel_scope.cancel()  # the session lives and dies as a unit

                nursery.start_soon(one_way, client, upstream)
                nursery.start_soon(one_way, upstream, client)
        finally:
            _close(upstream)
    finally:
        _close(client)


async def _accept_loop(listener: socket.socket, target_port: int, nursery: trio.Nursery) -> None:
    while True:
        await trio.lowlevel.wait_readable(listener)
        while True:  # bounded by the backlog: stops at the first EAGAIN
            try:
                client, _ = listener.accept()
            except BlockingIOError:
                break
            except OSError as exc:  # ECONNABORTED, EMFILE, ...: report, back off briefly
                print(f"trio-copy: accept: {exc}", file=sys.stderr, flush=True)
                await trio.sleep(0.01)
                break
            _tune(client)
            nursery.start_soon(_session, client, target_port)


async def serve(listen_port: int, target_port: int) -> None:
    """Serve until SIGTERM or SIGINT; returns once every session has been cancelled."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, listen_port))
        listener.listen(BACKLOG)
        listener.setblocking(False)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_accept_loop, listener, target_port, nursery)
                print("ready", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        _close(listener)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target-port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        trio.run(serve, args.listen_port, args.target_port)
    except OSError as exc:
        print(f"trio-copy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
