"""Coverage-guided fuzzing of the SFTP codec and its operation tracker with atheris.

The input is a raw byte stream, fed to :class:`SftpCodec` in one piece and in
chunks of 1 to 32 bytes whose sizes come from the input itself. Each packet decoded
is handed to an :class:`SftpOperations` as a client request and as a server answer.

Anything escaping other than ``ProtocolError`` is a bug, and so is any of these
broken invariants: every packet re-encodes to its exact bytes and those bytes are
the input, in order; both feedings decode the same packets and end the same way.

    python fuzz/fuzz_sftp_codec.py -max_total_time=60 fuzz/corpus-sftp
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from hoopd.codec import ProtocolError
    from hoopd.protocols.ssh.sftp_ops import SftpOperations
    from hoopd.protocols.ssh.sftp_wire import Packet, SftpCodec


def _chunks(data: bytes) -> list[bytes]:
    chunks, start, index = [], 0, len(data) - 1
    while start < len(data):
        size = 1 + data[index] % 32
        chunks.append(data[start : start + size])
        start += size
        index -= 1
    return chunks


def _run(pieces: list[bytes]) -> tuple[list[Packet], str | None]:
    codec, operations, found = SftpCodec(max_packet=64 * 1024), SftpOperations(), []
    try:
        for piece in pieces:
            codec.feed(piece)
            for packet in codec.packets():
                operations.command_for(packet)
                operations.forwarded(packet)
                operations.answered(packet)
                found.append(packet)
        codec.packets()  # a malformed packet after good ones is reported now
    except ProtocolError as exc:
        return found, exc.message
    return found, None


def TestOneInput(data: bytes) -> None:
    whole, whole_error = _run([data])
    split, split_error = _run(_chunks(data))
    if (whole, whole_error) != (split, split_error):
        raise AssertionError(f"chunking changed the packets: {whole!r} != {split!r}")
    consumed = b"".join(packet.encode() for packet in whole)
    if not data.startswith(consumed):
        raise AssertionError("the packets' bytes are not the input, in order")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
