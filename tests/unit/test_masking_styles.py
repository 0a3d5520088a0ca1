"""How masked values look: ``redact``, ``keep-last`` and ``hmac``."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from hoopd.masking import Column, Masker, MaskRule, MaskStyle

KEY = b"k" * 32
OTHER_KEY = b"q" * 32
CARD = "4111-1111-1111-1111"


def mask_value(value: bytes, style: MaskStyle, keep_last: int = 4, key: bytes = KEY) -> bytes:
    """``value`` in a column under a column rule of this style."""
    masker = Masker([MaskRule("r", columns=("secret",), style=style, keep_last=keep_last)], key)
    plan = masker.plan([Column("secret", "public.t", True)])
    assert plan is not None
    [masked], _ = masker.mask_row(plan, [value])
    assert masked is not None
    return masked


def mask_in_text(text: str, style: MaskStyle, keep_last: int = 4, key: bytes = KEY) -> str:
    masker = Masker(
        [MaskRule("r", detectors=("card", "email"), style=style, keep_last=keep_last)], key
    )
    return masker.mask_text(text)[0]


def token(value: bytes, key: bytes = KEY) -> str:
    return "hm_" + hmac.new(key, value, hashlib.sha256).hexdigest()[:16]


def test_redact_replaces_the_whole_value_whatever_its_length() -> None:
    assert mask_value(b"alice@example.com", "redact") == b"[redacted]"
    assert mask_value(b"x", "redact") == b"[redacted]"
    assert mask_value(b"", "redact") == b"[redacted]"


def test_redact_names_the_detector_inside_text() -> None:
    text = f"paid {CARD} by bob@example.org"
    assert mask_in_text(text, "redact") == "paid [redacted:card] by [redacted:email]"


def test_keep_last_shows_the_last_characters() -> None:
    assert mask_value(b"4111111111111111", "keep-last") == b"************1111"
    assert mask_value(b"4111111111111111", "keep-last", keep_last=6) == b"**********111111"
    assert mask_value(b"secret", "keep-last", keep_last=0) == b"******"


def test_keep_last_hides_values_no_longer_than_what_it_keeps() -> None:
    assert mask_value(b"1234", "keep-last") == b"****"
    assert mask_value(b"12", "keep-last") == b"**"
    assert mask_value(b"", "keep-last") == b""


def test_keep_last_counts_characters_not_bytes() -> None:
    assert mask_value("Zoë Ünïcødé".encode(), "keep-last").decode() == "*******cødé"


def test_keep_last_inside_text_masks_only_the_match() -> None:
    assert mask_in_text(f"card {CARD}, ok", "keep-last") == "card ***************1111, ok"


def test_hmac_is_the_keyed_sha256_of_the_value() -> None:
    assert mask_value(b"alice@example.com", "hmac") == token(b"alice@example.com").encode()
    assert re.fullmatch(rb"hm_[0-9a-f]{16}", mask_value(b"anything", "hmac"))


def test_hmac_is_deterministic_and_tells_values_apart() -> None:
    # Equal values give equal tokens, so joins and GROUP BY on the column still work.
    assert mask_value(b"alice@example.com", "hmac") == mask_value(b"alice@example.com", "hmac")
    assert mask_value(b"alice@example.com", "hmac") != mask_value(b"bob@example.com", "hmac")


def test_hmac_depends_on_the_key() -> None:
    assert mask_value(b"alice@example.com", "hmac") != mask_value(
        b"alice@example.com", "hmac", key=OTHER_KEY
    )


def test_hmac_token_is_the_same_in_a_column_and_inside_text() -> None:
    in_text = mask_in_text("to: alice@example.com", "hmac")
    assert in_text == f"to: {token(b'alice@example.com')}"
    assert f"to: {mask_value(b'alice@example.com', 'hmac').decode()}" == in_text


def test_hmac_of_bytes_that_are_not_utf8() -> None:
    # Tokens do not need to read the value as text.
    assert mask_value(b"\xff\xfe", "hmac") == token(b"\xff\xfe").encode()


@pytest.mark.parametrize("key", [b"", b"short"])
def test_hmac_needs_a_real_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="mask rule 'r': style hmac needs a key"):
        Masker([MaskRule("r", columns=("c",), style="hmac")], key)


def test_short_key_is_fine_without_hmac_rules() -> None:
    Masker([MaskRule("r", columns=("c",))], b"")
