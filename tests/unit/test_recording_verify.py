"""``verify`` finds every kind of edit, deletion and damage, and names it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hoopd.recording import Break, verify
from hoopd.recording.frames import ZERO_HASH, FrameEncoder
from hoopd.recording.journal import Journal
from hoopd.recording.segments import list_segments
from tests.unit.test_recording_support import (
    BOB,
    cut,
    locate,
    replace_bytes,
    result,
    start,
    statement,
)


async def record_three_sessions(data_dir: Path, segment_bytes: int = 1 << 20) -> list[str]:
    """Three interleaved sessions of 4 statements each, all ended; returns their ids."""
    journal = Journal.open(data_dir, segment_bytes=segment_bytes)
    sessions = [start(journal), start(journal, identity=BOB), start(journal)]
    for n in range(4):
        for i, session in enumerate(sessions):
            await session.append([statement(f"SELECT {n} FROM s{i}_marker"), result("SELECT 1", 1)])
    for session in sessions:
        await session.close("client-disconnect")
    journal.close()
    return [s.session_id for s in sessions]


def only(breaks: list[Break], problem: str) -> list[Break]:
    return [b for b in breaks if b.problem == problem]


async def test_an_untouched_journal_verifies(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path)
    report = verify(tmp_path)
    assert report.ok and report.breaks == []
    assert (report.sessions, report.records) == (3, 3 * (1 + 8 + 1))
    assert report.unterminated == [] and report.active == []


async def test_an_edited_byte_in_a_body_is_reported_as_an_edit_of_that_record(
    tmp_path: Path,
) -> None:
    ids = await record_three_sessions(tmp_path)
    located = locate(tmp_path)
    target = next(x for x in located if x.record.body.get("sql") == "SELECT 2 FROM s1_marker")
    replace_bytes(target.path, b"SELECT 2 FROM s1_marker", b"SELECT 9 FROM s1_marker")

    report = verify(tmp_path)
    assert not report.ok
    assert [(b.session_id, b.seq) for b in only(report.breaks, "edited")] == [
        (ids[1], target.record.seq)
    ]
    assert "do not match its hash" in str(report.breaks[0])


async def test_an_edit_with_a_recomputed_hash_still_breaks_both_chains(tmp_path: Path) -> None:
    ids = await record_three_sessions(tmp_path)
    target = next(
        x for x in locate(tmp_path) if x.record.body.get("sql") == "SELECT 1 FROM s0_marker"
    )
    data = bytearray(target.path.read_bytes())
    frame = data[target.offset : target.offset + target.size]
    frame = frame.replace(b"SELECT 1 FROM s0_marker", b"SELECT 7 FROM s0_marker")
    frame[-32:] = hashlib.sha256(frame[5:-34]).digest()  # a consistent forgery
    data[target.offset : target.offset + target.size] = frame
    target.path.write_bytes(bytes(data))

    report = verify(tmp_path)
    assert not only(report.breaks, "edited")
    # The next record of the session and the next frame of the journal both name
    # the original hash.
    deleted = only(report.breaks, "deleted")
    assert (ids[0], target.record.seq + 1) in [(b.session_id, b.seq) for b in deleted]
    assert any("in the journal" in b.message for b in deleted)


async def test_a_deleted_record_is_reported_with_its_session_and_seq(tmp_path: Path) -> None:
    ids = await record_three_sessions(tmp_path)
    target = next(
        x for x in locate(tmp_path) if x.record.body.get("sql") == "SELECT 1 FROM s2_marker"
    )
    cut(target.path, target.offset, target.offset + target.size)

    report = verify(tmp_path)
    gaps = [b for b in report.breaks if b.session_id == ids[2] and b.seq == target.record.seq + 1]
    assert any(f"record {target.record.seq} is missing" in b.message for b in gaps)
    assert all(b.session_id == ids[2] for b in report.breaks)


async def test_records_cut_from_the_end_are_reported_against_the_index(tmp_path: Path) -> None:
    ids = await record_three_sessions(tmp_path)
    last = locate(tmp_path)[-1]  # the last session's session_end
    assert (last.record.session_id, last.record.kind) == (ids[2], "session_end")
    with last.path.open("r+b") as file:
        file.truncate(last.offset)

    report = verify(tmp_path)
    truncated = only(report.breaks, "truncated")
    assert [(b.session_id, b.seq) for b in truncated] == [(ids[2], last.record.seq)]
    assert "has 10 records but the journal has 9" in truncated[0].message
    assert report.breaks == truncated
    # Without its end, the session also shows as left open by its gateway.
    assert report.unterminated == [ids[2]]


async def test_a_whole_deleted_session_is_found_by_the_index_and_the_journal_chain(
    tmp_path: Path,
) -> None:
    ids = await record_three_sessions(tmp_path)
    path = list_segments(tmp_path)[0][1]
    data = path.read_bytes()
    for x in reversed(locate(tmp_path)):
        if x.record.session_id == ids[1]:
            data = data[: x.offset] + data[x.offset + x.size :]
    path.write_bytes(data)

    report = verify(tmp_path)
    assert [b.session_id for b in report.breaks if "the index lists" in b.message] == [ids[1]]
    assert any("does not follow the frame before it" in b.message for b in report.breaks)


async def test_a_deleted_session_is_found_even_when_the_index_was_edited_too(
    tmp_path: Path,
) -> None:
    ids = await record_three_sessions(tmp_path)
    first = next(x for x in locate(tmp_path) if x.record.session_id == ids[0])
    # Remove the first session's first record only; the index cannot help here.
    cut(first.path, first.offset, first.offset + first.size)
    report = verify(tmp_path)
    assert any(b.session_id == ids[0] and b.seq == 1 for b in only(report.breaks, "deleted"))


async def test_garbage_appended_to_a_segment_is_reported_at_its_offset(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path)
    path = list_segments(tmp_path)[-1][1]
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(b"this is not a frame, just some bytes someone added")

    report = verify(tmp_path)
    corrupt = only(report.breaks, "corrupt")
    assert [(b.segment, b.offset) for b in corrupt] == [(1, size)]
    assert "50 bytes that are not a record" in corrupt[0].message
    assert report.records == 30  # everything before it is still read


async def test_garbage_inserted_mid_segment_is_skipped_and_what_follows_still_read(
    tmp_path: Path,
) -> None:
    await record_three_sessions(tmp_path)
    middle = locate(tmp_path)[15]
    data = middle.path.read_bytes()
    middle.path.write_bytes(
        data[: middle.offset] + b"\x00\x00\x10\x00junk" * 3 + data[middle.offset :]
    )

    report = verify(tmp_path)
    corrupt = only(report.breaks, "corrupt")
    assert [(b.offset, "24 bytes" in b.message) for b in corrupt] == [(middle.offset, True)]
    assert report.records == 30
    assert report.breaks == corrupt  # nothing else is wrong


async def test_reading_resumes_only_at_a_frame_whose_hash_checks_out(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path)
    middle = locate(tmp_path)[15]
    # Damage that contains something shaped exactly like a frame, but whose hash
    # is wrong: it must be counted as part of the damage, not read as a record.
    lookalike, _ = FrameEncoder().encode("x" * 16, 0, 1.0, "statement", {}, ZERO_HASH, ZERO_HASH)
    lookalike = lookalike[:-1] + bytes([lookalike[-1] ^ 1])
    inserted = b"junk" + lookalike + b"more junk"
    data = middle.path.read_bytes()
    middle.path.write_bytes(data[: middle.offset] + inserted + data[middle.offset :])

    report = verify(tmp_path)
    assert [(b.problem, b.offset) for b in report.breaks] == [("corrupt", middle.offset)]
    assert f"{len(inserted)} bytes that are not a record" in report.breaks[0].message
    assert report.records == 30


async def test_a_write_cut_short_is_reported_as_an_incomplete_final_frame(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path)
    last = locate(tmp_path)[-1]
    with last.path.open("r+b") as file:
        file.truncate(last.offset + last.size - 10)

    report = verify(tmp_path)
    corrupt = only(report.breaks, "corrupt")
    assert [b.offset for b in corrupt] == [last.offset]
    assert "incomplete final frame" in corrupt[0].message


async def test_a_missing_segment_is_reported(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path, segment_bytes=1024)
    segments = list_segments(tmp_path)
    assert len(segments) >= 4
    number, path = segments[1]
    path.unlink()

    report = verify(tmp_path)
    missing = only(report.breaks, "missing-segment")
    assert [b.segment for b in missing] == [number + 1]
    assert f"segment {number} is missing" in missing[0].message
    assert only(report.breaks, "deleted")  # and the sessions whose records were in it


async def test_a_first_segment_removed_with_its_sessions_is_reported(tmp_path: Path) -> None:
    await record_three_sessions(tmp_path, segment_bytes=1024)
    list_segments(tmp_path)[0][1].unlink()
    report = verify(tmp_path)
    assert "segment 1 is missing" in only(report.breaks, "missing-segment")[0].message
