"""OpenSSH's SFTP extensions as the gateway judges them, and forward destinations."""

from __future__ import annotations

import struct

from hoopd.protocols.ssh import sftp_wire as w
from hoopd.protocols.ssh.forward import destination_of
from hoopd.protocols.ssh.sftp_ops import SftpOperations


def extended(name: str, *fields: bytes) -> w.Packet:
    payload = bytes([w.EXTENDED]) + struct.pack("!I", 5) + _string(name.encode())
    payload += b"".join(_string(f) for f in fields)
    return w.decode(struct.pack("!I", len(payload)) + payload)


def _string(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def test_posix_rename_is_a_rename_with_both_paths() -> None:
    packet = extended("posix-rename@openssh.com", b"/h/a", b"/h/b")
    assert isinstance(packet, w.ExtendedRequest) and packet.paths == ("/h/a", "/h/b")
    command = SftpOperations().command_for(packet)
    assert command is not None
    assert (command.kind, command.paths) == ("sftp-rename", ("/h/a", "/h/b"))
    assert not SftpOperations().unsupported(packet)


def test_hardlink_and_lsetstat_are_judged() -> None:
    link = SftpOperations().command_for(extended("hardlink@openssh.com", b"/h/old", b"/h/new"))
    assert link is not None and (link.kind, link.text) == (
        "sftp-write",
        "hardlink /h/new to /h/old",
    )
    attrs = SftpOperations().command_for(extended("lsetstat@openssh.com", b"/h/f", b"\0" * 4))
    assert attrs is not None and (attrs.kind, attrs.paths) == ("sftp-setstat", ("/h/f",))


def test_lookups_pass_and_unknown_extensions_are_answered_by_the_gateway() -> None:
    operations = SftpOperations()
    statvfs = extended("statvfs@openssh.com", b"/")
    assert operations.command_for(statvfs) is None and not operations.unsupported(statvfs)
    unknown = extended("make-coffee@example.com", b"/")
    assert operations.command_for(unknown) is None and operations.unsupported(unknown)


def test_extended_packets_round_trip() -> None:
    packet = extended("posix-rename@openssh.com", b"a", b"b")
    assert w.decode(packet.encode()) == packet


def test_destinations() -> None:
    assert destination_of("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert destination_of("::1", 22) == "[::1]:22"
    assert destination_of("db.internal", 5432) == "db.internal:5432"
