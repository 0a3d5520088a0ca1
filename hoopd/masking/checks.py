"""Checksums that tell real identifiers from look-alikes: Luhn and IBAN mod-97."""

from __future__ import annotations

from typing import Final

# Doubling a digit, then adding the digits of the product (Luhn's step for every
# second digit from the right).
_DOUBLED: Final = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}
_SINGLE: Final = {str(d): d for d in range(10)}


def luhn_valid(digits: str) -> bool:
    """Whether an ASCII digit string passes the Luhn check (payment card numbers)."""
    total = sum(map(_SINGLE.__getitem__, digits[-1::-2]))
    total += sum(map(_DOUBLED.__getitem__, digits[-2::-2]))
    return total % 10 == 0


_IBAN_COUNTRY_CODES: Final = """
    AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE
    GI GL GR GT HN HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT
    MU NI NL NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG
    XK YE AO BF BJ CF CG CI CM CV DZ GA GQ GW IR KM MA MG ML MZ NE SN TD TG
"""
IBAN_COUNTRIES: Final = frozenset(_IBAN_COUNTRY_CODES.split())
"""Countries whose account numbers are IBANs: the SWIFT IBAN registry, and the
countries (mostly in Africa) whose banks issue IBANs outside it. Lengths are
not checked per country: a missing or outdated entry there would let a real IBAN
through, while mod-97 already rejects 96 of 97 look-alikes."""

# Letters become two-digit numbers (A=10 ... Z=35) in the mod-97 computation.
_LETTER_VALUES: Final = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban_valid(candidate: str) -> bool:
    """Whether ``candidate`` (upper-case letters and digits, no spaces) is an IBAN:
    a known country, 15 to 34 characters, and check digits that make mod-97 equal 1."""
    if not 15 <= len(candidate) <= 34 or candidate[:2] not in IBAN_COUNTRIES:
        return False
    # Anything else would make int() below fail or read a different number.
    if not (candidate.isascii() and candidate.isalnum() and candidate.isupper()):
        return False
    if not candidate[2:4].isdigit():
        return False
    rearranged = (candidate[4:] + candidate[:4]).translate(_LETTER_VALUES)
    return int(rearranged) % 97 == 1
