"""Carrying one channel's data between the client and the target.

Guarantees:

- every chunk is recorded (``stdin``, ``stdout``, ``stderr``, with the channel
  number) before it is forwarded: output is durable before the client sees it;
  what arrived together is read (and recorded) as one chunk, up to ``CHUNK`` bytes;
- flow control end to end: a chunk is forwarded and drained (the receiving side's
  SSH window has room) before the next one is read, and asyncssh stops extending
  the sending side's window while its buffer is full, so a slow reader slows the
  writer instead of filling the gateway's memory;
- window changes, signals and breaks from the client reach the target (window
  changes and signals are recorded);
- the client sees the target's exit status or signal, recorded first (``exit``);
- the client closing its channel closes the target's;
- on a ``shell`` channel, each line the user ends with Enter is also recorded, as a
  ``shell_line`` audit event after the ``stdin`` record holding its Enter (best
  effort, see :mod:`.shell_lines`; never judged by policy).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import suppress
from functools import partial
from typing import Any

import asyncssh
from asyncssh.misc import SoftEOFReceived

from hoopd.masking import StreamMasker

from .commands import host_command
from .link import Link
from .process import ChannelProcess
from .shell_lines import ShellLines

log = logging.getLogger("hoopd.ssh")

#: Most bytes read (and recorded) at once. When the gateway is the slower side, data
#: piles up in asyncssh's buffer (up to a 2 MiB window): fewer, larger chunks mean
#: fewer records, writes and wake-ups (512 KiB streamed about 8% faster than 128 KiB;
#: 1 MiB was no faster). Less is read whenever less has arrived.
CHUNK = 512 * 1024

CONTROL = (asyncssh.TerminalSizeChanged, asyncssh.SignalReceived, asyncssh.BreakReceived)

Pump = Callable[[], Coroutine[Any, Any, None]]


async def relay(
    link: Link,
    number: int,
    process: ChannelProcess,
    target: asyncssh.SSHClientProcess[bytes],
    pumps: tuple[Pump, Pump] | None = None,
) -> None:
    """Relay until the target's side has exited and its output has been forwarded.

    ``pumps`` replace the byte-for-byte carriers of stdout (target to client) and
    stdin (client to target), for a subsystem whose packets the gateway reads
    (SFTP); stderr, the exit status and closing stay as for any channel."""
    link.targets.add(target)
    if pumps is None:
        stdout: Pump = partial(_output, link, number, "stdout", target.stdout, process.stdout)
        shell = host_command(process.command, process.subsystem).kind == "shell"
        lines = ShellLines() if shell else None
        stdin: Pump = partial(_input, link, number, process, target, lines)
    else:
        stdout, stdin = pumps
    outputs = [
        asyncio.ensure_future(stdout()),
        asyncio.ensure_future(_output(link, number, "stderr", target.stderr, process.stderr)),
    ]
    helpers = [
        asyncio.ensure_future(stdin()),
        asyncio.ensure_future(_close_when_client_leaves(process, target)),
    ]
    try:
        await asyncio.gather(*outputs)  # raises the first failure (RecordingFailed)
        await target.wait_closed()
    finally:
        # Every task ends with the relay, whichever way it ends.
        for task in (*outputs, *helpers):
            task.cancel()
        await asyncio.gather(*outputs, *helpers, return_exceptions=True)
        link.targets.discard(target)
        target.close()
    await _pass_exit(link, number, process, target)


async def _output(
    link: Link,
    number: int,
    kind: str,
    source: asyncssh.SSHReader[bytes],
    sink: asyncssh.SSHWriter[bytes],
) -> None:
    # Masked per stream: a value split across reads is still found, and what is held
    # back (a possible start of one) goes out as soon as it cannot be, or at the end.
    masker = StreamMasker(link.masker) if link.masker is not None else None
    while True:
        try:
            data = await source.read(CHUNK)
        except (OSError, asyncssh.Error):  # the target's connection broke
            data = b""
        ended = not data
        if masker is not None:
            data = masker.flush() if ended else masker.feed(data)
        if data:
            await link.record([(kind, {"channel": number, "data": data})])
            try:
                sink.write(data)
                await sink.drain()
            except (OSError, asyncssh.Error):
                return  # the client's channel is gone; _close_when_client_leaves closes ours
        if ended:
            return


async def _input(
    link: Link,
    number: int,
    process: ChannelProcess,
    target: asyncssh.SSHClientProcess[bytes],
    lines: ShellLines | None = None,
) -> None:
    while True:
        try:
            data = await process.stdin.read(CHUNK)
        except CONTROL as control:
            record = _control_record(number, control)
            if record is not None:
                await link.record([record])
            target.feed_exception(control)
            continue
        except SoftEOFReceived:
            continue
        if not data:
            with suppress(OSError, asyncssh.Error):
                target.stdin.write_eof()
            return
        records: list[tuple[str, dict[str, Any]]] = [("stdin", {"channel": number, "data": data})]
        if lines is not None:
            records += [("shell_line", line.record(number)) for line in lines.feed(data)]
        await link.record(records)
        target.stdin.write(data)
        await target.stdin.drain()


def _control_record(number: int, control: Exception) -> tuple[str, dict[str, Any]] | None:
    if isinstance(control, asyncssh.TerminalSizeChanged):
        return ("window", {"channel": number, "cols": control.width, "rows": control.height})
    if isinstance(control, asyncssh.SignalReceived):
        return ("signal", {"channel": number, "signal": control.signal})
    return None


async def _close_when_client_leaves(
    process: ChannelProcess, target: asyncssh.SSHClientProcess[bytes]
) -> None:
    await process.channel.wait_closed()
    target.close()


async def _pass_exit(
    link: Link, number: int, process: ChannelProcess, target: asyncssh.SSHClientProcess[bytes]
) -> None:
    if link.ending:
        return  # the engine closes this channel, saying why
    signal, status = target.exit_signal, target.exit_status
    body: dict[str, Any] = {"channel": number}
    records: list[tuple[str, dict[str, Any]]] = []
    if signal is not None:
        body["signal"] = signal[0]
    elif status is not None and status >= 0:
        body["status"] = status
    else:
        body["status"] = None
        if not process.channel.is_closing():
            # The target's side vanished: say so, or the client learns nothing.
            gone = "connection" if link.upstream.is_closed() else "channel"
            line = f"hoopd: the target closed the {gone} without an exit status\n".encode()
            records.append(("stderr", {"channel": number, "data": line}))
    await link.record([*records, ("exit", body)])
    with suppress(OSError, asyncssh.Error):
        for _kind, record in records:
            process.stderr.write(record["data"])
        process.stdout.write_eof()
    if signal is not None:
        name, core_dumped, message, lang = signal
        process.exit_with_signal(name, core_dumped, message, lang)
    elif body["status"] is not None:
        process.exit(body["status"])
    else:
        process.close()
