"""Masking a terminal byte stream: chunking does not matter, holding is bounded and no
longer than needed, escape sequences and raw bytes pass through, nothing raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.masking import DETECTORS, Masker, MaskRule, StreamMasker
from hoopd.masking.stream import _TAILS
from hoopd.masking.terminal import TerminalSplitter

KEY = b"0123456789abcdef0123456789abcdef"
ALL = tuple(DETECTORS)

RULE_SETS = {
    "redact": [MaskRule("all", detectors=ALL)],
    "keep-last": [MaskRule("all", detectors=ALL, style="keep-last")],
    "hmac": [MaskRule("all", detectors=ALL, style="hmac")],
    "mixed": [
        MaskRule("cards", detectors=("card",), style="keep-last"),
        MaskRule("contacts", detectors=("email", "phone"), style="hmac"),
        MaskRule("secrets", detectors=ALL),
        MaskRule("words", detectors=("regex:secret-[0-9]+",)),
    ],
}
MASKERS = {name: Masker(rules, KEY) for name, rules in RULE_SETS.items()}
REDACT = MASKERS["redact"]


def stream(masker: Masker, chunks: list[bytes], **options: int) -> list[bytes]:
    """What each feed returned, then what flush returned."""
    s = StreamMasker(masker, **options)
    out = [s.feed(chunk) for chunk in chunks]
    out.append(s.flush())
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def visible(data: bytes) -> tuple[str, bytes]:
    """The visible text of ``data`` and its escape bytes, in order."""
    splitter = TerminalSplitter()
    pieces = splitter.feed(data) + splitter.flush()
    text = "".join(p for p in pieces if isinstance(p, str))
    return text, b"".join(p for p in pieces if isinstance(p, bytes))


# --- what the property tests are made of ---------------------------------------------


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:  # these are doubled once the check digit is appended
            n = 2 * n - 9 if n > 4 else 2 * n
        total += n
    return digits + str(-total % 10)


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("23456"))
    body = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    number = _luhn_complete(first + body)
    separator = draw(st.sampled_from(["", " ", "-"]))
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    if len(groups[-1]) < 3:  # groups of fewer than three digits do not make a card
        groups[-2:] = [groups[-2] + groups[-1]]
    return separator.join(groups)


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda n: n != 666))
    return f"{area:03}-{draw(st.integers(1, 99)):02}-{draw(st.integers(1, 9999)):04}"


_WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=20)
emails = st.builds(lambda a, b, c: f"{a}@{b}.{c}", _WORD, _WORD, st.sampled_from(["com", "io"]))
jwts = st.builds(lambda a, b, c: f"eyJ{a}.eyJ{b}.{c}", _B64, _B64, _B64)
private_keys = st.builds(
    lambda lines, end: (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(lines)
        + ("\n-----END RSA PRIVATE KEY-----" if end else "")
    ),
    st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=", max_size=30), max_size=4),
    st.booleans(),
)
filler = st.text(
    st.sampled_from([*"abcxyzDE 0123456789-.@+()_/=:é中\t\r", "\U0001f600"]), max_size=12
)
ESCAPES = [
    "\x1b[31m",
    "\x1b[0m",
    "\x1b[2K",
    "\x1b[10;20H",
    "\x1b]0;a title\x07",
    "\x1b]8;;https://example.com\x1b\\",
    "\x1b7",
    "\x1b(B",
]
# Values of the other detectors, and pieces of values, glued to whatever comes next:
# where one find ends and the next starts is where masking apart could go wrong.
OTHERS = [
    "+1 415 555 2671",
    "(415) 555-2671",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "Bearer abcDEF1234567890xyz",
    "AKIAIOSFODNN7EXAMPLE",
    "AIza" + "x" * 35,
    "secret-12",
    "-----BEGIN",
    "-----END RSA PRIVATE KEY-----",
    "eyJ",
    "2024-01-15 12:30",
]
text_parts = st.one_of(
    cards(),
    emails,
    ssns(),
    jwts,
    private_keys,
    filler,
    st.sampled_from(OTHERS),
    st.sampled_from(["\n", "\r\n", " "]),
)
parts = st.one_of(
    text_parts.map(str.encode),
    text_parts.map(str.encode),
    st.sampled_from(ESCAPES).map(str.encode),
    st.sampled_from([b"\xff", b"\xc3", b"\xe4\xb8"]),  # not UTF-8 (alone)
)
streams = st.lists(parts, max_size=14).map(b"".join)
chunk_cuts = st.lists(st.integers(0, 10_000), max_size=12)


@given(st.one_of(cards(), emails, ssns(), jwts, private_keys))
def test_the_generated_values_are_found(value: str) -> None:
    assert REDACT.mask_text(value)[0].startswith("[redacted:")


# --- 1. chunking does not matter -----------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(streams, chunk_cuts, st.sampled_from(sorted(MASKERS)))
def test_chunking_does_not_matter(data: bytes, cuts: list[int], rules: str) -> None:
    masker = MASKERS[rules]
    whole = b"".join(stream(masker, [data]))
    assert b"".join(stream(masker, split(data, cuts))) == whole
    # ...and one piece is masking the visible text, escapes kept in order.
    text_in, escapes_in = visible(data)
    text_out, escapes_out = visible(whole)
    assert text_out == masker.mask_text(text_in)[0]
    assert escapes_out == escapes_in


@settings(max_examples=200, deadline=None)
@given(streams)
def test_byte_by_byte_is_the_same(data: bytes) -> None:
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert b"".join(stream(REDACT, one_by_one)) == b"".join(stream(REDACT, [data]))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_text_edits_rebuild_mask_text(text: str) -> None:
    for masker in MASKERS.values():
        edits, names = masker.text_edits(text)
        rebuilt, done = [], 0
        for start, end, replacement in edits:
            assert done <= start < end
            rebuilt += [text[done:start], replacement]
            done = end
        rebuilt.append(text[done:])
        assert ("".join(rebuilt), names) == masker.mask_text(text)


# --- 2. holding ----------------------------------------------------------------------


def test_a_line_without_candidates_goes_out_at_once() -> None:
    s = StreamMasker(REDACT)
    assert s.feed(b"ls\r\n") == b"ls\r\n"
    assert s.feed(b"total 0\r\n$ ") == b"total 0\r\n$ "
    assert s.held == 0


def test_only_what_could_be_a_card_is_held() -> None:
    s = StreamMasker(Masker([MaskRule("cards", detectors=("card",))], KEY))
    assert s.feed(b"echo 4111 1111") == b"echo "
    assert s.held == len("4111 1111")
    assert s.feed(b" 1111 1111") == b""
    assert s.feed(b"\r\n") == b"[redacted:card]\r\n"
    assert s.applied == {"cards"}


def test_keystrokes_echo_at_once_when_no_detector_can_use_them() -> None:
    s = StreamMasker(Masker([MaskRule("cards", detectors=("card", "us-ssn"))], KEY))
    assert [s.feed(bytes([c])) for c in b"ls -la"] == [bytes([c]) for c in b"ls -la"]


def test_a_word_is_held_while_it_could_be_an_email() -> None:
    s = StreamMasker(REDACT)
    assert s.feed(b"cat notes") == b"cat "  # "notes@example.com" is still possible
    assert s.feed(b" ") == b"notes "
    assert s.feed(b"bob@example.com") == b""  # ".au" could follow
    assert s.feed(b"\n") == b"[redacted:email]\n"


def test_what_a_match_reads_after_itself_is_waited_for() -> None:
    s = StreamMasker(REDACT)
    assert s.feed(b"id 123-45-6789") == b"id "
    assert s.feed(b"-1\n") == b"123-45-6789-1\n"  # a longer run, not an SSN


def test_a_card_complete_before_a_held_word_is_not_cut() -> None:
    # The email detector would hold "1111x" alone; the cut must not fall in the card.
    out = stream(REDACT, [b"4111 1111 1111 1111x", b"\n"])
    assert b"".join(out) == REDACT.mask_text("4111 1111 1111 1111x\n")[0].encode()


GLUED = [
    "eyeDE89 3704 0044 0532 0130 00\n",  # no IBAN: it starts inside a word
    "0@0.com(415) 555-2671 x",  # a phone number once the email is masked
    "0@0.com0+(415) 555-2671 x",  # not one: "(" comes after "+"
    "0@0.io2000 0000 0000 008 y",  # an email once the card number is masked
    "4111 1111 1111 1111x@example.com\n",
    "4111111111111111-123-45-6789 z",
    "123-45-6789-1\n",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln.\n",
]


@pytest.mark.parametrize("text", GLUED)
@pytest.mark.parametrize("rules", sorted(MASKERS))
def test_glued_values_split_anywhere(text: str, rules: str) -> None:
    masker, data = MASKERS[rules], text.encode()
    expected = masker.mask_text(text)[0].encode()
    for cut in range(len(data) + 1):
        assert b"".join(stream(masker, [data[:cut], data[cut:]])) == expected


@settings(max_examples=200, deadline=None)
@given(streams, chunk_cuts, st.integers(1, 64))
def test_holding_is_bounded(data: bytes, cuts: list[int], max_hold: int) -> None:
    s = StreamMasker(REDACT, max_hold=max_hold)
    for chunk in split(data, cuts):
        s.feed(chunk)
        assert s.held <= max_hold
    s.flush()
    assert s.held == 0


def test_past_max_hold_everything_is_released() -> None:
    s = StreamMasker(REDACT, max_hold=8)
    assert s.feed(b"abcdefghijkl") == b"abcdefghijkl"


def test_a_key_block_longer_than_max_hold_stays_masked_to_its_end() -> None:
    body = b"\n".join([b"MIIEpAIBAAKCAQEA3Tz2" * 3] * 10)
    key = b"-----BEGIN RSA PRIVATE KEY-----\n" + body + b"\n-----END RSA PRIVATE KEY-----"
    data = b"$ cat id_rsa\n" + key + b"\n$ "
    for rules in ("redact", "keep-last", "hmac"):
        out = stream(
            MASKERS[rules], [data[i : i + 7] for i in range(0, len(data), 7)], max_hold=100
        )
        assert b"MIIE" not in b"".join(out) and b"END RSA" not in b"".join(out)
        assert out[0] == b"$ cat " and b"".join(out).endswith(b"\n$ ")
        assert max(map(len, out)) < 200  # released on the way, not all at the end
    whole = b"".join(stream(REDACT, [data]))
    assert whole == b"$ cat id_rsa\n[redacted:private-key]\n$ "


# --- 3. escape sequences -------------------------------------------------------------


def test_an_escape_inside_a_card_is_kept_and_the_card_masked() -> None:
    data = b"4111\x1b[31m 1111 1111 1111\x1b[0m\r\n"
    assert b"".join(stream(REDACT, [data])) == b"[redacted:card]\x1b[31m\x1b[0m\r\n"
    kept = b"".join(stream(MASKERS["keep-last"], [data]))
    assert kept == b"****\x1b[31m***********1111\x1b[0m\r\n"  # the escape stays in place


@pytest.mark.parametrize("escape", ESCAPES)
def test_an_escape_split_anywhere_is_handled(escape: str) -> None:
    data = f"card 4111{escape} 1111 1111 1111 end\n".encode()
    expected = b"".join(stream(REDACT, [data]))
    assert escape.encode() in expected and b"4111" not in expected
    for cut in range(len(data) + 1):
        assert b"".join(stream(REDACT, [data[:cut], data[cut:]])) == expected


def test_an_unterminated_string_ends_at_a_control_character() -> None:
    data = b"\x1b]0;title\nalice@example.com\n"
    assert b"".join(stream(REDACT, [data])) == b"\x1b]0;title\n[redacted:email]\n"


def test_an_escape_sequence_is_never_masked() -> None:
    data = b"\x1b]0;alice@example.com\x07alice@example.com\n"
    assert b"".join(stream(REDACT, [data])) == b"\x1b]0;alice@example.com\x07[redacted:email]\n"


# --- 4. bytes that are not UTF-8 -----------------------------------------------------


def test_binary_passes_unchanged() -> None:
    data = bytes(range(256)) * 4
    assert b"".join(stream(REDACT, [data[i : i + 5] for i in range(0, len(data), 5)])) == data


def test_a_character_split_across_chunks_is_not_corrupted() -> None:
    data = "café 中文 \U0001f600 4111111111111111\n".encode()
    for cut in range(len(data) + 1):
        out = b"".join(stream(REDACT, [data[:cut], data[cut:]]))
        assert out == "café 中文 \U0001f600 [redacted:card]\n".encode()


def test_raw_bytes_beside_a_value() -> None:
    out = b"".join(stream(REDACT, [b"\xff4111111111111111\xfe\n"]))
    assert out == b"\xff[redacted:card]\xfe\n"


# --- 5. never raises -----------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), chunk_cuts, st.sampled_from(sorted(MASKERS)))
def test_any_bytes_in_any_chunks(data: bytes, cuts: list[int], rules: str) -> None:
    chunks = split(data, cuts)
    out = stream(MASKERS[rules], chunks, max_hold=32)
    assert isinstance(b"".join(out), bytes)
    assert b"".join(stream(MASKERS[rules], chunks)) == b"".join(stream(MASKERS[rules], [data]))


# --- 6. styles and rules come from the Masker ----------------------------------------


def test_styles_follow_the_rules() -> None:
    data = b"pay 4111-1111-1111-1111 from bob@example.com, note secret-42\n"
    out = b"".join(stream(MASKERS["mixed"], [data[i : i + 3] for i in range(0, len(data), 3)]))
    assert out == MASKERS["mixed"].mask_text(data.decode())[0].encode()
    assert b"***************1111 from" in out and b"hm_" in out and b"[redacted:regex]" in out


def test_applied_names_the_rules_that_changed_something() -> None:
    s = StreamMasker(MASKERS["mixed"])
    s.feed(b"bob@example.com\n")
    assert s.applied == {"contacts"}
    s.feed(b"plain text\n")
    s.flush()
    assert s.applied == {"contacts"}


def test_every_built_in_detector_says_what_to_hold() -> None:
    assert set(DETECTORS) == set(_TAILS)


def test_a_custom_regex_holds_the_line() -> None:
    s = StreamMasker(Masker([MaskRule("words", detectors=("regex:secret-[0-9]+",))], KEY))
    assert s.feed(b"done\nsecret-") == b"done\n"
    assert s.feed(b"12 ok\n") == b"[redacted:regex] ok\n"


def test_no_detectors_means_no_holding() -> None:
    s = StreamMasker(Masker([MaskRule("cols", columns=("email",))], KEY))
    assert s.feed(b"4111 1111") == b"4111 1111"


def test_max_hold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_hold"):
        StreamMasker(REDACT, max_hold=0)


def test_the_generated_escapes_are_escapes() -> None:
    for escape in ESCAPES:
        assert visible(escape.encode()) == ("", escape.encode())
