"""What an approver is shown: ids that survive retyping, digests that bind the exact
command, and text that cannot disguise itself."""

from __future__ import annotations

from hoopd.approvals.digest import command_digest
from hoopd.approvals.ids import new_request_id, normalise_request_id
from hoopd.approvals.text import one_line, shown, time_left


def test_ids_are_ten_typeable_characters_and_survive_sloppy_typing() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    for rid in ids:
        assert len(rid) == 10 and rid.isalnum() and rid == rid.lower()
        assert not set(rid) & set("ilou")
        assert normalise_request_id(f" {rid[:5].upper()}-{rid[5:]} ") == rid
    assert normalise_request_id("0O1IL-abcde") == "00111abcde"
    assert normalise_request_id("short") is None
    assert normalise_request_id("uuuuuuuuuu") is None


def test_the_digest_covers_exactly_the_command_and_its_parameters() -> None:
    base = command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", [b"1"])
    assert base == command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", [b"1"])
    assert len(base) == 64
    others = {
        command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1 ", [b"1"]),
        command_digest("postgres", "appdb", "delete from t where id = $1", [b"1"]),
        command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", ["1"]),
        command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", [None]),
        command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", [b""]),
        command_digest("postgres", "appdb", "DELETE FROM t WHERE id = $1", [b"2"]),
        command_digest("postgres", "other", "DELETE FROM t WHERE id = $1", [b"1"]),
    }
    assert base not in others and len(others) == 7


def test_invisible_and_reordering_characters_are_shown_escaped() -> None:
    # A terminal would erase the line; a bidi override would reverse what follows.
    assert shown("DROP TABLE x;\x1b[2K\rSELECT 1") == "DROP TABLE x;\\x1b[2K\\x0dSELECT 1"
    assert shown("SELECT '\u202egnp.exe'") == "SELECT '\\u202egnp.exe'"
    assert shown("a\u200bb") == "a\\u200bb"
    assert shown("SELECT 'ü',\n\t1") == "SELECT 'ü',\n\t1"


def test_one_line_flattens_and_says_when_it_cut() -> None:
    assert one_line("SELECT 1\n  FROM t", 40) == ("SELECT 1 FROM t", False)
    assert one_line("x" * 50, 10) == ("x" * 9 + "…", True)


def test_time_left_reads_naturally() -> None:
    assert [time_left(s) for s in (-5, 0, 42.9, 252, 3900)] == ["0s", "0s", "42s", "4m12s", "1h05m"]
