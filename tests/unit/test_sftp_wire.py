"""The SFTP codec: every packet type decoded whole and in any chunking, byte-exact
round trips, and garbage answered only by our ProtocolError; SFTP requests as the
pipeline's host commands."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoopd.codec import NEED_DATA, ProtocolError
from hoopd.protocols.ssh import sftp_wire as w
from hoopd.protocols.ssh.sftp_ops import SftpOperations


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def string(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return u32(len(raw)) + raw


def packet(kind: int, body: bytes, request_id: int | None = 7) -> bytes:
    payload = bytes([kind]) + (u32(request_id) if request_id is not None else b"") + body
    return u32(len(payload)) + payload


ATTRS = u32(0x4) + u32(0o644)
SAMPLES = [
    packet(w.INIT, u32(3), None),
    packet(w.VERSION, u32(3) + string("posix-rename@openssh.com") + string("1"), None),
    packet(w.OPEN, string("/etc/shadow") + u32(w.FXF_READ) + ATTRS),
    packet(w.OPEN, string("up.txt") + u32(w.FXF_WRITE | w.FXF_CREAT | w.FXF_TRUNC) + ATTRS),
    packet(w.CLOSE, string(b"h1")),
    packet(w.READ, string(b"h1") + struct.pack("!QI", 0, 32768)),
    packet(w.WRITE, string(b"h1") + struct.pack("!Q", 0) + string(b"data")),
    packet(w.SETSTAT, string("f") + ATTRS),
    packet(w.FSETSTAT, string(b"h1") + ATTRS),
    packet(w.OPENDIR, string("/srv")),
    packet(w.READDIR, string(b"d1")),
    packet(w.REMOVE, string("old.log")),
    packet(w.MKDIR, string("new") + ATTRS),
    packet(w.RMDIR, string("new")),
    packet(w.REALPATH, string(".")),
    packet(w.STAT, string("f")),
    packet(w.RENAME, string("a") + string("b")),
    packet(w.SYMLINK, string("link") + string("target")),
    packet(w.STATUS, u32(0) + string("ok") + string("en")),
    packet(w.HANDLE, string(b"h1")),
    packet(w.DATA, string(b"bytes")),
    packet(w.NAME, u32(0)),
    packet(200, string("statvfs@openssh.com") + string("/")),
]


def decode_all(data: bytes, cuts: list[int] | None = None) -> list[w.Packet]:
    codec = w.SftpCodec()
    found: list[w.Packet] = []
    pieces = [data] if cuts is None else _split(data, cuts)
    for piece in pieces:
        codec.feed(piece)
        found.extend(codec.packets())
    assert codec.next_packet() is NEED_DATA
    return found


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("raw", SAMPLES)
def test_every_packet_round_trips_byte_for_byte(raw: bytes) -> None:
    [decoded] = decode_all(raw)
    assert decoded.encode() == raw
    assert decoded == w.decode(raw)


def test_fields_are_decoded() -> None:
    opened = w.decode(SAMPLES[2])
    assert isinstance(opened, w.OpenRequest)
    assert (opened.request_id, opened.path, opened.pflags) == (7, "/etc/shadow", w.FXF_READ)
    renamed = w.decode(packet(w.RENAME, string("a") + string("b")))
    assert isinstance(renamed, w.TwoPathRequest) and (renamed.path, renamed.other) == ("a", "b")
    answer = w.decode(w.status(9, w.FX_PERMISSION_DENIED, "hoopd: no"))
    assert isinstance(answer, w.StatusReply)
    assert (answer.request_id, answer.code, answer.message) == (9, 3, "hoopd: no")


@given(st.lists(st.sampled_from(SAMPLES), max_size=12), st.lists(st.integers(0, 10_000)))
def test_any_chunking_gives_the_same_packets(chosen: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(chosen)
    assert [p.encode() for p in decode_all(stream, cuts)] == chosen


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_garbage_raises_only_protocol_error(data: bytes, cuts: list[int]) -> None:
    codec = w.SftpCodec(max_packet=4096)
    try:
        for piece in _split(data, cuts):
            codec.feed(piece)
            codec.packets()
    except ProtocolError:
        pass


def test_oversized_and_truncated_packets_are_refused() -> None:
    codec = w.SftpCodec()
    codec.feed(u32(w.MAX_PACKET + 1) + b"\x03")
    with pytest.raises(ProtocolError, match="out of bounds"):
        codec.next_packet()
    with pytest.raises(ProtocolError, match="too short"):
        w.decode(u32(5) + bytes([w.OPEN]) + u32(1))


def test_requests_become_host_commands_with_their_paths() -> None:
    ops = SftpOperations()
    commands = {raw: ops.command_for(w.decode(raw)) for raw in SAMPLES}
    read, write = commands[SAMPLES[2]], commands[SAMPLES[3]]
    assert read is not None and (read.kind, read.paths) == ("sftp-read", ("/etc/shadow",))
    assert write is not None and (write.kind, write.text) == ("sftp-write", "open up.txt for write")
    rename = commands[SAMPLES[16]]
    assert rename is not None and (rename.kind, rename.paths) == ("sftp-rename", ("a", "b"))
    kinds = {c.kind for c in commands.values() if c is not None}
    assert kinds == {
        "sftp-read", "sftp-write", "sftp-list", "sftp-remove", "sftp-mkdir", "sftp-setstat",
        "sftp-rename",
    }  # fmt: skip
    # Lookups, reads and writes on an open handle are not commands of their own.
    for kind in (w.STAT, w.REALPATH, w.READ, w.WRITE, w.CLOSE, w.INIT):
        assert all(c is None for raw, c in commands.items() if raw[4] == kind)


def test_a_handle_names_the_file_it_was_opened_for() -> None:
    ops = SftpOperations()
    opened = w.decode(packet(w.OPEN, string("conf.yml") + u32(w.FXF_WRITE) + ATTRS, 11))
    ops.forwarded(opened)
    ops.answered(w.decode(packet(w.HANDLE, string(b"hx"), 11)))
    change = ops.command_for(w.decode(packet(w.FSETSTAT, string(b"hx") + ATTRS, 12)))
    assert change is not None and change.paths == ("conf.yml",)
    ops.forwarded(w.decode(packet(w.CLOSE, string(b"hx"), 13)))
    after = ops.command_for(w.decode(packet(w.FSETSTAT, string(b"hx") + ATTRS, 14)))
    assert after is not None and after.paths == ("",)  # closed: no longer bound


def test_good_packets_before_a_malformed_one_are_kept() -> None:
    codec = w.SftpCodec()
    codec.feed(SAMPLES[0] + u32(0) + b"\x01")
    assert [p.encode() for p in codec.packets()] == [SAMPLES[0]]
    with pytest.raises(ProtocolError, match="out of bounds"):
        codec.packets()
