"""The generalization rules of sanitizers.abstract, one function per kind of value.

Each takes the detected value (and what surrounds it, where grammar needs it) and returns
`(replacement, rule)`; `rule` is a short value-free name for the audit ("age_range", "city_to_country").
A rule never returns the value itself: when a value is already as coarse as the setting asks
(a bare year at year granularity), it goes one level up (the decade).
"""

from __future__ import annotations

import re
from datetime import date

from sanitizers.places import resolve

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_MONTH_RE = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DECADE_WORDS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
                 90: "ninety", 100: "hundred"}
# HIPAA Safe Harbor: 3-digit ZIP prefixes covering 20,000 people or fewer become 000.
SMALL_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
                        "879", "884", "890", "893"})


# --- age ----------------------------------------------------------------------------------------


_PRONOUNS = {"i": "my", "he": "his", "she": "her", "we": "our", "you": "your"}


def _possessive(before: str) -> str:
    """The possessive of whoever the age is about: the subject just before ("I'm 34"), else the
    sentence's first personal pronoun ("I moved there at age 34"), else "their"."""
    subject = re.search(r"\b(i|he|she|we|you)(?:['’](?:m|s|re))?\s+(?:am\s+|is\s+|are\s+|was\s+|turned\s+|turn\s+|"
                        r"will\s+be\s+)?(?:now\s+|just\s+)?$", before[-40:], re.IGNORECASE)
    if not subject:
        sentence = re.split(r"[.!?\n]", before)[-1]
        subject = re.search(r"\b(i|he|she|we)\b", sentence, re.IGNORECASE)
    return _PRONOUNS[subject.group(1).lower()] if subject else "their"


def age(value: str, before: str, cap: int) -> tuple[str, str, int]:
    """Replacement, rule, and how many characters of `before` it swallows ("aged ", "at age ")."""
    number = re.search(r"\d{1,3}", value)
    if not number:
        return "a certain age", "age_unparsed", 0
    n = int(number.group(0))
    low = value.lower()
    adjective = bool(re.search(r"year[\s-]*old", low)) and "-" in low  # "a 34-year-old"
    if adjective:
        if n >= cap:
            return f"{cap}-plus-year-old", "age_cap", 0
        if n >= 20:
            return f"{_DECADE_WORDS[n // 10 * 10]}-something-year-old", "age_range", 0
        return ("teenage" if n >= 13 else "young"), "age_range", 0
    swallow = 0
    lead = re.search(r"(?:\bat\s+(?:the\s+)?age\s+(?:of\s+)?|\baged\s+)$", before, re.IGNORECASE)
    label = re.search(r"\bage\s*[:=-]?\s*$", before, re.IGNORECASE)
    if lead:
        swallow = len(lead.group(0))
    elif label:  # "Age: 34" → "Age: 30s"
        if n >= cap:
            return f"{cap} or older", "age_cap", 0
        return (f"{n // 10 * 10}s" if n >= 20 else ("teens" if n >= 13 else "under 13")), "age_range", 0
    if n >= cap:
        return f"{cap} or older", "age_cap", swallow
    poss = _possessive(before[: len(before) - swallow])
    if n >= 20:
        return f"in {poss} {n // 10 * 10}s", "age_range", swallow
    if n >= 13:
        return f"in {poss} teens", "age_range", swallow
    return "under 13", "age_range", swallow


# --- dates --------------------------------------------------------------------------------------


def _month_number(token: str) -> int:
    token = token.lower().rstrip(".")
    return next(i + 1 for i, m in enumerate(MONTHS) if m.startswith(token[:3]))


def parse_date(value: str) -> tuple[int | None, int | None, int | None]:
    """(year, month, day) as far as the text says; None where it does not."""
    v = value.strip().lower()
    if m := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", v):
        return int(m.group(1)), int(m.group(2)), int(m.group(3))
    if m := re.search(r"\b(\d{1,2})([/.\-])(\d{1,2})\2(\d{2,4})\b", v):
        a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        year += 2000 if year < 100 and year < 50 else (1900 if year < 100 else 0)
        day_first = a > 12 or (m.group(2) == "." and b <= 12)
        month, day = (b, a) if day_first else (a, b)
        return year, (month if 1 <= month <= 12 else None), day
    month = re.search(rf"\b{_MONTH_RE}(?![a-z])", v)
    year = re.search(r"(?<![\d.])(1[89]\d{2}|20\d{2})(?![\d.])", v)
    day = re.search(r"(?<![\d.])(\d{1,2})(?:st|nd|rd|th)?(?![\d.])", v)
    return (int(year.group(1)) if year else None, _month_number(month.group(1)) if month else None,
            int(day.group(1)) if day and month else None)


def _ago(then: date, today: date) -> str:
    months = (today.year - then.year) * 12 + today.month - then.month
    future, months = months < 0, abs(months)
    if months < 1:
        return "in the coming weeks" if future else "recently"
    if months < 12:
        amount = "a month" if months == 1 else f"about {months} months"
    else:
        years = round(months / 12)
        amount = "about a year" if years == 1 else f"about {years} years"
    return f"in {amount}" if future else f"{amount} ago"


def date_time(value: str, granularity: str, today: date) -> tuple[str, str]:
    v = " ".join(value.strip().lower().split())
    weekday = re.fullmatch(r"(?:on\s+)?(?:this\s+|last\s+|next\s+)?((?:mon|tues|wednes|thurs|fri|satur|sun)day)s?", v)
    if weekday:
        return ("on a weekend" if weekday.group(1) in ("saturday", "sunday") else "on a weekday"), "weekday"
    if re.fullmatch(r"yesterday|last night|(?:last|past) (?:week|month|weekend|year)", v):
        return "recently", "relative_word"
    if re.fullmatch(r"today|tonight|tomorrow|this (?:morning|afternoon|evening|week|weekend|month)|next (?:week|weekend|month|year)", v):
        return "soon", "relative_word"
    clock = re.fullmatch(r"(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)?", v)
    if clock and (clock.group(2) or clock.group(3)):
        hour = int(clock.group(1))
        if clock.group(3):
            hour = hour % 12 + (12 if clock.group(3).startswith("p") else 0)
        part = ("in the morning" if 5 <= hour < 12 else "in the afternoon" if 12 <= hour < 17
                else "in the evening" if 17 <= hour < 22 else "at night")
        return part, "time_of_day"
    year, month, day = parse_date(value)
    if year is None and month is None:
        return "at some point", "date_unparsed"
    if granularity == "relative" and year is not None:
        return _ago(date(year, month or 7, min(day or 15, 28)), today), "date_relative"
    if year is None:  # "March 14": no year to keep
        return (f"in {MONTHS[month - 1].capitalize()}", "date_month") if day else ("at some point", "date_month_only")
    if granularity == "month" and month is not None and day is not None:
        return f"{MONTHS[month - 1].capitalize()} {year}", "date_month"
    if month is not None or day is not None:
        return f"{year}", "date_year"
    return f"the {year // 10 * 10}s", "date_decade"  # a bare year: one level up


# --- places -------------------------------------------------------------------------------------


def location(value: str, level: str) -> tuple[str, str]:
    place = resolve(value)
    where_country = place.country or "a country"
    if place.kind in ("city", "address"):
        noun = "a city" if place.kind == "city" else "an address"
        if level == "continent":
            return (f"{noun} in {place.continent}" if place.continent else noun), f"{place.kind}_to_continent"
        if level == "region" and place.state:
            return f"{noun} in {place.state}", f"{place.kind}_to_state"
        if place.country:
            return f"{noun} in {where_country}", f"{place.kind}_to_country"
        return noun, f"{place.kind}_unresolved"
    if place.kind == "state":
        if level == "continent":
            return "a place in North America", "state_to_continent"
        return "a state in the US", "state_to_country"
    if place.kind == "country":
        return (f"a country in {place.continent}" if place.continent else "a country"), "country_to_continent"
    if place.kind == "continent":
        return "a region of the world", "continent_generic"
    return "a place", "location_unresolved"


def zip_code(value: str, digits: int) -> tuple[str, str]:
    compact = value.strip().upper()
    us = re.fullmatch(r"(\d{5})(?:-\d{4})?", compact)
    if digits == 0:
        return "a postal code", "zip_generic"
    if us:
        prefix = us.group(1)[:digits]
        if digits == 3 and prefix in SMALL_ZIP3:
            prefix = "000"
        return prefix + "X" * (5 - len(prefix)), f"zip_{digits}_digits"
    if m := re.fullmatch(r"([A-Z]{1,2}\d[A-Z\d]?)\s?\d[A-Z]{2}", compact):  # UK: keep the outward code
        return m.group(1), "zip_outward"
    if m := re.fullmatch(r"([A-Z]\d[A-Z])\s?\d[A-Z]\d", compact):  # Canada: forward sortation area
        return m.group(1), "zip_outward"
    if re.fullmatch(r"\d{4,6}", compact):
        keep = min(digits, len(compact) - 2)
        return compact[:keep] + "X" * (len(compact) - keep), f"zip_{keep}_digits"
    return "a postal code", "zip_generic"


# --- money --------------------------------------------------------------------------------------

_CURRENCY = {"$": "dollars", "usd": "dollars", "dollar": "dollars", "€": "euros", "eur": "euros", "euro": "euros",
             "£": "pounds", "gbp": "pounds", "pound": "pounds", "¥": "yen", "jpy": "yen", "₹": "rupees",
             "inr": "rupees", "rupee": "rupees", "chf": "francs", "sar": "riyals", "riyal": "riyals"}
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "million": 1e6, "bn": 1e9, "b": 1e9, "billion": 1e9}
_FIGURES = {1: "a single-digit", 2: "a two-figure", 3: "a three-figure", 4: "a four-figure", 5: "a five-figure",
            6: "a six-figure", 7: "a seven-figure"}
_SYMBOL = {"dollars": "$", "euros": "€", "pounds": "£", "yen": "¥", "rupees": "₹"}


def parse_money(value: str) -> tuple[float | None, str]:
    v = value.lower().replace("\u00a0", " ")
    number = re.search(r"(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(k|thousand|mm|m|million|bn|b|billion)?(?![a-z])", v)
    currency = next((name for token, name in _CURRENCY.items() if token in v), "")
    if not number:
        return None, currency
    amount = float(number.group(1).replace(",", ""))
    if number.group(2):
        amount *= _MULTIPLIER[number.group(2)]
    return amount, currency


def money(value: str, style: str) -> tuple[str, str]:
    amount, currency = parse_money(value)
    if amount is None:
        return "an amount of money", "money_unparsed"
    in_currency = f" in {currency}" if currency else ""
    digits = len(str(int(amount))) if amount >= 1 else 1
    if style == "round" and amount >= 1:
        magnitude = 10 ** (digits - 1)
        rounded = round(amount / magnitude) * magnitude
        if rounded != amount:  # an already-round amount would be sent as it is
            symbol = _SYMBOL.get(currency, "")
            text = _short_number(rounded)
            return (f"about {symbol}{text}" if symbol else f"about {text}{in_currency}"), "money_round"
    if digits <= 7:
        return f"{_FIGURES[digits]} sum{in_currency}", "money_magnitude"
    scale = "millions" if digits <= 9 else "billions"
    return f"a sum in the {scale}{' of ' + currency if currency else ''}", "money_magnitude"


def _short_number(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:g} billion"
    if value >= 1e6:
        return f"{value / 1e6:g} million"
    return f"{int(value):,}"

