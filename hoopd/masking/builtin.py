"""The built-in detectors, by name.

Every regex here is linear in the length of its input: possessive quantifiers and
look-behinds keep a failed attempt from being retried inside the same run. What
each detector matches, and what it deliberately leaves alone, is in docs/masking.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from hoopd.masking.detector import Detector, Span
from hoopd.masking.numeric import card_spans, iban_spans, phone_spans

# Characters of an unquoted (dot-atom) local part, Unicode letters included.
_LOCAL: Final = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL: Final = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}++@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?:[^\W\d_]{1,63}|[Xx][Nn]--[\w-]{1,59})(?![\w-])"
)

# Digit groups joined by single spaces or dashes, at least 13 digits in all.
_CARD: Final = re.compile(r"(?<![0-9])(?=(?:[0-9][ -]?+){13})[0-9]++(?:[ -][0-9]++)*+")

_SSN: Final = re.compile(
    r"(?<![0-9])(?<![0-9]-)(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}"
    r"(?![0-9])(?!-[0-9])"
)

_IBAN: Final = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}[0-9A-Za-z]*+(?: [0-9A-Za-z]++)*+")

# Groups of digits, optionally in parentheses, joined by at most one space, dot or
# dash; an optional leading '+'; at least 10 digits in all.
_PHONE_GROUP: Final = r"(?:\([0-9]{1,5}\)|[0-9]++)"
# A national number does not start with a year (2024-01-15 10:30 is a timestamp);
# saying so here spares the Python check for every timestamp in a result.
_PHONE: Final = re.compile(
    r"(?<![\w+/.-])(?=\+?(?:[ .()-]{0,2}+[0-9]){10})(?!(?:19|20)[0-9]{2}[ .-])"
    rf"\+?{_PHONE_GROUP}(?:[ .-]?+{_PHONE_GROUP})*+"
)

_B64URL: Final = "[A-Za-z0-9_-]"
# Header and payload are JSON objects, so both usually start with "eyJ" ('{"'). An
# unsigned token ("alg": "none") ends in an empty signature; that form is only
# taken when the payload starts with "eyJ" too, so "eyJ....x." at the end of a
# sentence is not mistaken for one.
_JWT: Final = re.compile(
    rf"(?<!{_B64URL})eyJ{_B64URL}*+\.(?:eyJ{_B64URL}*+\.{_B64URL}*+|{_B64URL}++\.{_B64URL}++)"
)

_AWS_KEY: Final = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_GCP_KEY: Final = re.compile(rf"(?<!{_B64URL})AIza{_B64URL}{{35}}(?!{_B64URL})")

_PEM_LABEL: Final = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_PRIVATE_KEY: Final = re.compile(
    rf"-----BEGIN {_PEM_LABEL}.*?(?:-----END {_PEM_LABEL}|\Z)", re.DOTALL
)

_BEARER: Final = re.compile(
    r"(?<![A-Za-z0-9_-])(?:[Bb]earer|BEARER)[ \t]++([A-Za-z0-9._~+/-]++=*+)"
)
_MIN_BEARER_TOKEN: Final = 16


def _bearer_token(match: re.Match[str]) -> Iterable[Span]:
    """The token after ``Bearer``, when it is long and looks random, not like a word
    ("bearer instrumentalities"): it has a non-letter, or a capital after the first.
    Dots that end it end a sentence, not the token."""
    start = match.start(1)
    token = match.group(1).rstrip(".")
    if len(token) < _MIN_BEARER_TOKEN:
        return ()
    if token.isalpha() and token[1:].islower():
        return ()
    return ((start, start + len(token)),)


# Pre-filter hints: each finds something in any text its detector can mask (see
# Detector): the start of the detector's regex, on bytes, with no validation.
_CARD_HINT: Final = re.compile(rb"(?<![0-9])(?:[0-9][ -]?+){12}[0-9]")
_SSN_HINT: Final = re.compile(rb"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_IBAN_HINT: Final = re.compile(rb"[A-Za-z]{2}[0-9]{2}")
_PHONE_HINT: Final = re.compile(
    rb"(?<![0-9A-Za-z_+/.-])(?!(?:19|20)[0-9]{2}[ .-])\+?(?:[ .()-]{0,2}+[0-9]){10}"
)


def _detectors() -> Iterable[Detector]:
    yield Detector("email", _EMAIL, needles=(b"@",))
    yield Detector("card", _CARD, card_spans, min_digits=13, hint=_CARD_HINT)
    yield Detector("us-ssn", _SSN, needles=(b"-",), min_digits=9, hint=_SSN_HINT)
    yield Detector("iban", _IBAN, iban_spans, min_digits=2, hint=_IBAN_HINT)
    yield Detector("phone", _PHONE, phone_spans, min_digits=10, hint=_PHONE_HINT)
    yield Detector("jwt", _JWT, needles=(b"eyJ",))
    yield Detector("aws-access-key", _AWS_KEY, needles=(b"AKIA", b"ASIA"))
    yield Detector("gcp-api-key", _GCP_KEY, needles=(b"AIza",))
    yield Detector("private-key", _PRIVATE_KEY, needles=(b"PRIVATE KEY",))
    yield Detector("bearer-token", _BEARER, _bearer_token, needles=(b"earer", b"EARER"))


DETECTORS: Final[Mapping[str, Detector]] = MappingProxyType({d.name: d for d in _detectors()})
"""Every built-in detector by name, in the order docs/masking.md describes them."""
