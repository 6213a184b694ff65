"""Checks applied to a matched value: the offline e-mail domain check, the French NIR key, and the
guard against UK NHS numbers that are really US phone numbers.

The checksums of Presidio's own recognizers (Luhn, IBAN mod-97, SSN/ITIN lists, NHS mod-11,
base58/bech32, …) are not here: the tier calls each recognizer's `validate_result` and
`invalidate_result`, so they behave exactly as in Presidio.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import phonenumbers
import regex
import tldextract

# The bundled public-suffix snapshot; an empty URL tuple means tldextract never fetches the list.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

Validator = Callable[[str], "bool | None"]


def email_domain_ok(value: str) -> bool:
    """The address ends in a known public suffix (bundled list, never fetched)."""
    return _domain_ok(value.rpartition("@")[2].lower())


@lru_cache(maxsize=16384)
def _domain_ok(domain: str) -> bool:
    # tldextract reads the whole address as a URL: its host part is what follows the "@".
    return bool(_OFFLINE_TLD(domain).suffix)


_NIR_SEPARATORS = regex.compile(r"[\s.\-]")


def fr_nir_valid(value: str) -> bool:
    """French social security number (NIR / numéro INSEE): 13 characters, then the key
    97 − (number mod 97); Corsican departments 2A / 2B count as 19 / 18."""
    compact = _NIR_SEPARATORS.sub("", value).upper()
    if len(compact) != 15 or not compact[13:].isdigit():
        return False
    body = compact[:13]
    if body[5:7] == "2A":
        body = body[:5] + "19" + body[7:]
    elif body[5:7] == "2B":
        body = body[:5] + "18" + body[7:]
    if not body.isdigit():
        return False
    return 97 - int(body) % 97 == int(compact[13:])


# Words that make a 10-digit number near them an NHS number rather than a phone number.
NHS_CONTEXT = ("nhs", "health", "patient", "hospital", "medical", "clinic", "surgery", "doctor")
NHS_WHOLE_WORDS = frozenset({"gp", "chi"})


def is_us_phone(value: str) -> bool:
    """The value is a valid North American (US/CA) phone number as written."""
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) in {"US", "CA"}


def has_nhs_context(words: set[str]) -> bool:
    """Surrounding keywords that point at the NHS (substring for long words, whole word for short)."""
    return any(word in NHS_WHOLE_WORDS or any(c in word for c in NHS_CONTEXT) for word in words)
