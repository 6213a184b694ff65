"""Recognizers the proxy adds to Presidio's set, as declarative specs run by the same pattern tier.

Presidio misses identifiers people routinely type into prompts: a postal code after "zip code:",
a local phone number without country code after "call me at", a bare year of birth or founding.
Each has a low base score that only a context word lifts over the default threshold, so the same
digits elsewhere are not reported.
"""

from __future__ import annotations

from sanitizers.recognizers.tier import CustomSpec

# Base 0.2: below every default threshold alone; a context word lifts it to 0.55.
_NEEDS_CONTEXT = 0.2

SUPPLEMENTARY: tuple[CustomSpec, ...] = (
    CustomSpec(
        name="PostalCodeRecognizer",
        entity="ZIP_CODE",
        patterns=(
            ("postal_numeric", r"(?<![\w-])\d{3,6}(?:[- ]\d{2,4})?(?![\w-])", _NEEDS_CONTEXT),
            ("postal_uk", r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b", _NEEDS_CONTEXT),
            ("postal_ca", r"\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b", _NEEDS_CONTEXT),
        ),
        context=("zip", "zipcode", "postal", "postcode", "plz", "cp"),
    ),
    CustomSpec(
        name="LocalPhoneRecognizer",
        entity="PHONE_NUMBER",
        patterns=(
            (
                "phone_groups",
                r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?![\w-])",
                _NEEDS_CONTEXT,
            ),
        ),
        context=("phone", "call", "tel", "telephone", "mobile", "cell", "cellphone", "fax", "whatsapp", "reach", "text", "dial"),
    ),
    CustomSpec(
        name="DateWordRecognizer",
        entity="DATE_TIME",
        patterns=(
            ("weekday", r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b", 0.6),
            (
                "month_day",
                r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
                r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.? \d{1,2}(?:st|nd|rd|th)?(?:,? \d{4})?\b",
                0.6,
            ),
            (
                "month_year",
                r"\b(?:January|February|March|April|June|July|August|September|October|November|December) \d{4}\b",
                0.6,
            ),
            ("year", r"(?<![\w-])(?:19|20)\d{2}(?![\w-])", _NEEDS_CONTEXT),
        ),
        context=("in", "since", "year", "born", "birth", "founded", "established", "graduated", "until", "from", "date", "dob"),
    ),
)
