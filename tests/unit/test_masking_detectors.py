"""The built-in detectors: a corpus of values each must mask, and near misses that no
detector may touch (what a user would see if it did: their order numbers, dates and
ids turned into ``[redacted:...]``)."""

from __future__ import annotations

import pytest

from hoopd.masking import DETECTORS, Masker, MaskRule

KEY = b"0123456789abcdef0123456789abcdef"

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GCP_KEY = "AIzaSyD" + "aGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
RSA_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2\nq4L+8w==\n-----END RSA PRIVATE KEY-----"
)

# detector -> values it must mask; each is checked alone and inside a sentence.
FOUND: dict[str, list[str]] = {
    "email": [
        "alice@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien_99@example.ie",
        "USER@EXAMPLE.COM",
        "a@b.c",
        "josé.müller@bücher.de",
        "x@xn--80ak6aa92e.com",
    ],
    "card": [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "5555 5555 5555 4444",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "3530111333300000",
        "4222222222222",
        "6304 0000 0000 0000",
    ],
    "us-ssn": ["123-45-6789", "078-05-1120", "665-01-0001", "899-99-9999"],
    "iban": [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "de89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "NO9386011117947",
    ],
    "phone": [
        "+14155552671",
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "+44 20 7946 0958",
        "+49 30 1234567",
        "(415) 555-2671",
        "(415)555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-0199",
        "020 7946 0958",
    ],
    "jwt": [JWT, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."],
    "aws-access-key": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "gcp-api-key": [GCP_KEY],
    "private-key": [
        RSA_KEY,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE\\n-----END EC PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
    ],
}

BEARER_TOKENS = ["abcDEF123456789xyzQ", "ya29.a0AfH6SMBxYz-Q_1", JWT, "0123456789abcdef0123"]

# Values no detector may touch, with every built-in detector on.
NEAR_MISSES = [
    # Cards failing Luhn, ids, long numbers, numbers of other issuers.
    "4111 1111 1111 1112",
    "4111111111111112",
    "5555555555554445",
    "1234567890123456",
    "4000123412341233",
    "1111111111111117",
    "7000000000000000",
    "41111111111111111111",
    "4111 1111 1111 11",
    # Social security numbers in the invalid ranges, or not in AAA-GG-SSSS form.
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",
    "123-45-0000",
    "123456789",
    "1123-45-6789",
    "123-45-67890",
    # IBANs with a wrong check, an unknown country, or too short.
    "DE89 3704 0044 0532 0130 01",
    "DE00370400440532013000",
    "XX89370400440532013000",
    "DE8937040044",
    # Dates, times, order numbers, ids, addresses, versions.
    "2024-01-15",
    "2024-01-15 12:30:45",
    "2024-01-15T12:30:45.123456+00:00",
    "15.01.2024",
    "01/15/2024 10:30",
    "ORD-2024-1234-5678",
    "order 2024-1234-5678",
    "INV-000123456789",
    "4155552671",
    "id 12345678901",
    "192.168.100.10",
    "10.0.0.1:5432",
    "v1.24.3",
    "3.14159265358979",
    "1700000000123",
    "+12345",
    "550e8400-e29b-41d4-a716-446655440000",
    # E-mail look-alikes: no domain dot, a numeric top-level domain, handles.
    "root@localhost",
    "postgres@10.0.0.1",
    "@alice",
    "pkg@1.2.3",
    # Token look-alikes.
    "eyJhbGciOiJIUzI1NiJ9",
    "eyJhbGciOiJIUzI1NiJ9.payload-without-signature-dot",
    "AKIAIOSFODNN7EXAMPL",
    "AKIAIOSFODNN7EXAMPLEX",
    "akiaiosfodnn7example",
    "AIDAIOSFODNN7EXAMPLE",
    "AIza-too-short",
    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "the bearer of bad news",
    "Bearer short-token",
    "bearer instrumentalities",
    "SELECT * FROM users WHERE id = 42",
]


def _masker(*detectors: str) -> Masker:
    return Masker([MaskRule("pii", detectors=detectors)], KEY)


ALL = _masker(*DETECTORS)


@pytest.mark.parametrize(
    ("detector", "value"), [(d, v) for d, values in FOUND.items() for v in values]
)
def test_each_detector_masks_its_values(detector: str, value: str) -> None:
    alone, rules = _masker(detector).mask_text(value)
    assert alone == f"[redacted:{detector}]"
    assert rules == ["pii"]
    sentence, _ = _masker(detector).mask_text(f"see ({value}), thanks")
    assert sentence == f"see ([redacted:{detector}]), thanks"


@pytest.mark.parametrize("token", BEARER_TOKENS)
def test_bearer_token_masks_only_the_token(token: str) -> None:
    masked, rules = _masker("bearer-token").mask_text(f"Authorization: Bearer {token}\r\n")
    assert masked == "Authorization: Bearer [redacted:bearer-token]\r\n"
    assert rules == ["pii"]
    assert _masker("bearer-token").mask_text(f"bearer {token}")[0] == (
        "bearer [redacted:bearer-token]"
    )


@pytest.mark.parametrize("value", NEAR_MISSES)
def test_near_misses_are_left_alone(value: str) -> None:
    assert ALL.mask_text(value) == (value, [])
    assert ALL.mask_text(f"note: {value}.") == (f"note: {value}.", [])


def test_every_builtin_detector_is_in_the_corpus() -> None:
    assert set(DETECTORS) == {*FOUND, "bearer-token"}


def test_jwt_shape_is_enough() -> None:
    # Segments are not decoded: a token-shaped string is masked even if its parts
    # are not valid base64 JSON, since a damaged token can still carry claims.
    assert _masker("jwt").mask_text("eyJnot-json.eyJalso_not.sig")[0] == "[redacted:jwt]"


def test_unterminated_private_key_is_masked_to_the_end() -> None:
    text = "key: -----BEGIN PRIVATE KEY-----\nMC4CAQAw\n(truncated"
    assert _masker("private-key").mask_text(text)[0] == "key: [redacted:private-key]"


def test_private_key_stops_at_its_end_line() -> None:
    masked, _ = _masker("private-key").mask_text(f"{RSA_KEY}\nafter {RSA_KEY} end")
    assert masked == "[redacted:private-key]\nafter [redacted:private-key] end"


def test_card_inside_a_longer_run_of_groups() -> None:
    # A card followed by an expiry year, and one after an order number.
    masked, _ = _masker("card").mask_text("4111 1111 1111 1111 2031 / 123 4111-1111-1111-1111")
    assert masked == "[redacted:card] 2031 / 123 [redacted:card]"


def test_card_not_taken_for_a_phone_number() -> None:
    assert _masker("phone").mask_text("4111 1111 1111 1111")[0] == "4111 1111 1111 1111"


def test_several_finds_in_one_text() -> None:
    text = "alice@example.com paid with 4111111111111111, ssn 123-45-6789, bob@example.org"
    masked, rules = ALL.mask_text(text)
    assert masked == (
        "[redacted:email] paid with [redacted:card], ssn [redacted:us-ssn], [redacted:email]"
    )
    assert rules == ["pii"]


def test_error_message_echoing_a_value() -> None:
    message = "Key (email)=(alice@example.com) already exists."
    assert ALL.mask_text(message)[0] == "Key (email)=([redacted:email]) already exists."
    assert ALL.mask_text("Key (email)=(a@b.c) already exists.")[0] == (
        "Key (email)=([redacted:email]) already exists."
    )


def test_copy_line_with_tabs() -> None:
    line = "17\talice@example.com\t4111 1111 1111 1111\t2024-01-15\n"
    assert ALL.mask_text(line)[0] == "17\t[redacted:email]\t[redacted:card]\t2024-01-15\n"


def test_neighbours_hidden_by_a_match_are_found_once_it_is_masked() -> None:
    # The card's last digit keeps the IBAN from starting at a word boundary until the
    # card has been replaced; the text is searched again after each change.
    masked, _ = ALL.mask_text("4111111111111111DE89370400440532013000")
    assert masked == "[redacted:card][redacted:iban]"


def test_glued_chain_that_does_not_settle_is_masked_whole() -> None:
    # Each number hides the next ('+' right after a digit does not start one) until
    # it is masked; past the bounded number of passes the whole text goes.
    chain = "+14155552671" * 20
    assert ALL.mask_text(f"call {chain}") == ("[redacted]", ["pii"])
    assert ALL.mask_text("+14155552671" * 3) == ("[redacted:phone]" * 3, ["pii"])


def test_overlapping_finds_become_one_replacement() -> None:
    masked, _ = _masker("jwt", "bearer-token").mask_text(f"Bearer {JWT}")
    assert masked == "Bearer [redacted:jwt]"


def test_custom_regex() -> None:
    masker = _masker("regex:ORD-[0-9]{6}")
    assert masker.mask_text("orders ORD-123456, ORD-12") == (
        "orders [redacted:regex], ORD-12",
        ["pii"],
    )


def test_custom_regex_with_empty_matches_inserts_nothing() -> None:
    assert _masker("regex:x*").mask_text("abc") == ("abc", [])
    assert _masker("regex:x*").mask_text("axxb")[0] == "a[redacted:regex]b"


def test_custom_regex_matching_its_own_marker_settles() -> None:
    # A replacement is never searched again, so the text settles after one change.
    assert _masker("regex:redacted").mask_text("redacted") == ("[redacted:regex]", ["pii"])
    assert _masker("regex:x+").mask_text("axxb")[0] == "a[redacted:regex]b"
