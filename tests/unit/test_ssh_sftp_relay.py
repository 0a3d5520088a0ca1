"""The SFTP relay's decisions, with stand-ins for the channel, the target and the
link: what reaches the target, what the client is answered, what is recorded."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest

from hoopd.events import HostCommand
from hoopd.pipeline import Admission, Refusal
from hoopd.protocols.ssh import sftp_wire as w
from hoopd.protocols.ssh.link import RecordingFailed
from hoopd.protocols.ssh.sftp_paths import PathsUnknown
from hoopd.protocols.ssh.sftp_relay import SftpRelay


def packet(kind: int, request_id: int, body: bytes) -> bytes:
    payload = bytes([kind]) + struct.pack("!I", request_id) + body
    return struct.pack("!I", len(payload)) + payload


def string(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


OPEN_SECRET = packet(w.OPEN, 1, string(b"/h/secret") + struct.pack("!I", w.FXF_READ) + b"\0" * 4)
STAT = packet(w.STAT, 2, string(b"/h/file"))


class Reader:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, _size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class Writer:
    def __init__(self) -> None:
        self.data = b""
        self.eof = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        self.eof = True


class Side:
    """A channel end: stdin, stdout, stderr, and whether it was closed (True) or
    exited (its status)."""

    def __init__(self) -> None:
        self.stdin: Any = Writer()
        self.stdout: Any = Reader()
        self.stderr = Writer()
        self.closed: int | bool = False
        self.channel = self

    async def wait_closed(self) -> None:
        await asyncio.sleep(3600)

    def close(self) -> None:
        self.closed = True

    def exit(self, status: int) -> None:
        self.closed = status


class Link:
    def __init__(self, refuse: bool = False, fail: bool = False) -> None:
        self.records: list[tuple[str, Mapping[str, Any]]] = []
        self.commands: list[HostCommand] = []
        self.refuse, self.fail = refuse, fail
        self.session = type("S", (), {"session_id": "s1"})()

    async def record(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        self.records.extend(records)

    async def admit(self, command: HostCommand, *_hooks: object) -> Admission:
        if self.fail:
            raise RecordingFailed("session recording is unavailable")
        self.commands.append(command)
        return Admission(len(self.commands), Refusal("no", "r", "deny") if self.refuse else None)


class Paths:
    """The target's answers to "where does this path point": ``/h/...`` resolves to
    ``/home/u/...``; ``unknown`` makes every answer fail."""

    def __init__(self, unknown: bool = False) -> None:
        self.unknown = unknown
        self.closed = False

    async def resolve(self, path: str) -> str:
        if self.unknown:
            raise PathsUnknown("the target went away")
        return path.replace("/h/", "/home/u/", 1)

    def close(self) -> None:
        self.closed = True


def relay(link: Link, *client: bytes, paths: Paths | None = None) -> tuple[SftpRelay, Any, Any]:
    process = Side()
    process.stdin = Reader(*client)  # what the client sends
    process.stdout = Writer()  # what the client receives
    target = Side()
    resolver = cast(Any, paths or Paths())
    sftp = SftpRelay(cast(Any, link), 1, cast(Any, process), cast(Any, target), resolver)
    return sftp, process, target


def test_a_refused_open_is_answered_by_the_gateway_and_the_rest_goes_on() -> None:
    link = Link(refuse=True)
    sftp, process, target = relay(link, OPEN_SECRET + STAT)
    _answers, requests = sftp.pumps()
    asyncio.run(requests())
    assert target.stdin.data == STAT and target.stdin.eof
    answer = w.decode(process.stdout.data)
    assert isinstance(answer, w.StatusReply)
    assert (answer.request_id, answer.code, answer.message) == (
        1,
        w.FX_PERMISSION_DENIED,
        "hoopd: no",
    )
    assert [c.paths for c in link.commands] == [("/home/u/secret",)]  # judged resolved
    assert "/h/secret" in link.commands[0].text  # as the client wrote it
    assert [kind for kind, _ in link.records] == ["stdout", "stdin"]


def test_an_operation_whose_path_the_target_cannot_resolve_is_refused() -> None:
    link = Link()
    paths = Paths(unknown=True)
    sftp, process, target = relay(link, OPEN_SECRET + STAT, paths=paths)
    _answers, requests = sftp.pumps()
    asyncio.run(requests())
    assert target.stdin.data == STAT  # the lookup goes on; the open never reached it
    answer = w.decode(process.stdout.data)
    assert isinstance(answer, w.StatusReply)
    assert (answer.request_id, answer.code) == (1, w.FX_PERMISSION_DENIED)
    assert "cannot resolve" in answer.message
    assert link.commands == []  # never judged on the path as written
    assert paths.closed


def test_an_operation_that_cannot_be_admitted_never_reaches_the_target() -> None:
    sftp, _process, target = relay(Link(fail=True), STAT + OPEN_SECRET + STAT)
    _answers, requests = sftp.pumps()
    with pytest.raises(RecordingFailed):
        asyncio.run(requests())
    assert target.stdin.data == STAT  # what came before it, and nothing after


def test_a_malformed_client_packet_ends_the_channel() -> None:
    link = Link()
    sftp, process, target = relay(link, STAT + b"\xff\xff\xff\xff" + b"x" * 8)
    _answers, requests = sftp.pumps()
    asyncio.run(requests())
    assert target.stdin.data == STAT
    assert process.closed == 1 and target.closed is True
    assert link.records[-1][0] == "stderr"


def test_answers_to_admitted_operations_are_recorded_as_results() -> None:
    link = Link()
    sftp, process, target = relay(link, OPEN_SECRET)
    answers, requests = sftp.pumps()
    asyncio.run(requests())
    handle = packet(w.HANDLE, 1, string(b"h1"))
    target.stdout = Reader(handle[:5], handle[5:] + packet(w.STATUS, 9, struct.pack("!I", 0)))
    asyncio.run(answers())
    assert process.stdout.data == handle + packet(w.STATUS, 9, struct.pack("!I", 0))
    assert ("result", {"command": 1, "tag": "handle"}) in link.records
