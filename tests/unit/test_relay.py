"""The relay's socket streams: whole transfers, end of stream, and fairness."""

from __future__ import annotations

import socket

import trio

from hoopd.relay import SocketByteStream, run_pumps


def stream_pair() -> tuple[SocketByteStream, SocketByteStream]:
    left, right = socket.socketpair()
    return SocketByteStream(left), SocketByteStream(right)


async def test_a_transfer_larger_than_socket_buffers_arrives_whole() -> None:
    sender, receiver = stream_pair()
    payload = bytes(range(256)) * 40_000  # ~10 MB: many partial sends and reads
    received = bytearray()

    async def read_all() -> None:
        while len(received) < len(payload):
            chunk = await receiver.receive_some()
            assert chunk, "stream ended early"
            received.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        await sender.send_all(payload)
    assert bytes(received) == payload
    await sender.aclose()
    await receiver.aclose()


async def test_end_of_stream_reads_as_empty_bytes() -> None:
    sender, receiver = stream_pair()
    await sender.send_all(b"last words")
    await sender.aclose()
    assert await receiver.receive_some() == b"last words"
    assert await receiver.receive_some() == b""
    await receiver.aclose()


async def test_a_busy_stream_does_not_starve_other_tasks() -> None:
    sender, receiver = stream_pair()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0)

    async def flood() -> None:
        # 48 small sends fit in the socket buffer, so none has to wait: only
        # the stream's own periodic yield lets the ticker run meanwhile.
        for _ in range(48):
            await sender.send_all(b"x" * 100)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0)
        before = ticks
        await flood()
        during = ticks - before
        nursery.cancel_scope.cancel()
    assert during >= 2
    await sender.aclose()
    await receiver.aclose()


async def test_run_pumps_stops_the_other_pump_when_one_returns() -> None:
    stopped = trio.Event()

    async def finishes() -> None:
        await trio.sleep(0)

    async def waits_forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()

    with trio.fail_after(5):
        await run_pumps(finishes, waits_forever)
    assert stopped.is_set()
