"""Per-region rule-outs for `phone.PhoneFinder`: what libphonenumber's metadata says an attempt needs
before `parse` + `is_valid_number` (leniency VALID) can find a number of a given region in it.

`Region` reads one region's metadata once: the national-number lengths and number-type patterns
(of every region sharing its calling code), how many leading digits parse may strip (calling code,
national or carrier prefix: `_prefix_width`, read with `shape.analyze_shape`), and which number
formats want the national prefix written (`_FormatChooser`). `Region.hopeless` then rules a region
out for an attempt without parsing it. The text-only side (candidates, attempts) is in
`phone_candidates`; the walk that combines both, in `phone`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import phonenumbers
import regex
from phonenumbers import phonenumberutil
from phonenumbers.phonemetadata import PhoneMetadata

from sanitizers.recognizers.shape import ShapeError, analyze_shape, group_widths

_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip",
                 "pager", "uan", "voicemail")
_DIGIT_RUNS = re.compile(r"\d+")
LONG_COUNT = 64  # more digits than any national number with every prefix parse may strip


def _shortest_number(region: str) -> int:
    metadata = PhoneMetadata.metadata_for_region(region)
    lengths = metadata.general_desc.possible_length if metadata and metadata.general_desc else ()
    return min(lengths or (1,))


def _shortest_idd(region: str) -> int:
    """Digits in the shortest international dialling prefix of `region` ("00" → 2, "011" → 3)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    prefix = (metadata.international_prefix or "") if metadata else ""
    if prefix.isdigit():
        return len(prefix)
    return 1 if prefix else 0  # a pattern: at least one digit (a safe lower bound)


def shortest_number_anywhere() -> int:
    """A lower bound on the digits of any valid national number, in any region: libphonenumber's
    own minimum (reading every region's metadata for the true minimum, 4, costs ~0.1 s)."""
    return int(getattr(phonenumberutil, "_MIN_LENGTH_FOR_NSN", 2))


class Region:
    """What an attempt needs before `parse` can find a valid number of this region in it.

    Without '+', an international prefix or letters, `parse` reads the attempt's digits as a
    national number: it may strip this country's calling code and a national (or carrier) prefix
    from the front, and an extension from the back — nothing else. `is_valid_number` then needs the
    rest, the national significant number (NSN), to have one of the region's possible lengths and to
    fullmatch one of its number-type patterns (fixed line, mobile, …; any region sharing the
    calling code counts). So the NSN is the attempt's digits less at most `prefix_width` leading
    ones — `strip` where they start with the calling code — (and, past an extension mark, less an
    extension)."""

    def __init__(self, region: str) -> None:
        self.code = region
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            raise ValueError(f"unknown phone region {region!r}")
        # An international dialling prefix (e.g. "011 44 …") can lead to any country's numbers.
        self.idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
        # The digits an international prefix can begin with ("00", "011": only "0").
        self.idd_first = frozenset(
            d for d in "0123456789"
            if self.idd is not None and regex.compile(metadata.international_prefix).match(d, partial=True)
        )
        self.min_digits = min(_shortest_number(region), _shortest_idd(region) + 1 + shortest_number_anywhere())
        # parse strips a national (or carrier) prefix once; after the calling code, twice (once
        # while extracting the code, once more on the national number: "49 0 0 948…" parses as a
        # German 948…).
        self.prefix_width = _prefix_width(metadata.national_prefix_for_parsing,
                                          metadata.national_prefix_transform_rule)
        self.strip = len(str(metadata.country_code)) + 2 * self.prefix_width
        siblings = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(metadata.country_code, (region,))
        by_length: dict[int, list[str]] = {}
        for sibling in siblings:
            desc = PhoneMetadata.metadata_for_region(sibling)
            if desc is None or desc.general_desc is None:
                continue
            general = set(desc.general_desc.possible_length or range(1, 18))
            for kind in _NUMBER_TYPES:
                number_desc = getattr(desc, kind, None)
                if number_desc is None or not number_desc.national_number_pattern:
                    continue
                # A type without lengths of its own takes the general ones (both are checked).
                for length in general & set(number_desc.possible_length or general):
                    by_length.setdefault(length, []).append(f"(?:{number_desc.national_number_pattern})")
        # Per NSN length, the patterns an NSN of that length must fullmatch (one of).
        self.by_length = {length: re.compile("|".join(dict.fromkeys(found))) for length, found in by_length.items()}
        self.shortest, self.longest = (min(by_length), max(by_length)) if by_length else (1, 0)
        assert self.longest + self.strip < LONG_COUNT or self.strip >= 99
        # Leniency VALID also wants the national prefix ("0 30 …") where the number's format rule
        # asks for one, unless the calling code was read from the digits ("49 30 …").
        main = PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_country_code(metadata.country_code))
        self.country_code = str(metadata.country_code)
        prefix = main.national_prefix_for_parsing if main is not None else None
        self.national_prefix = re.compile(prefix) if prefix else None
        self._formats = (_FormatChooser(main) if main is not None and _first_group_only is not None
                         and main.number_format else None)
        self._quick: dict[tuple[int, int], Any] = {}  # `_quick_pattern`s, filled on first need

    def could_hold(self, digits: str, starts: Iterable[int], ends: Iterable[int]) -> bool:
        """Whether some digits[s + k : e] (s in starts: where the attempt's digits begin; e in
        ends; k ≤ prefix_width, or ≤ strip after the calling code) can be the NSN of a number the
        matcher accepts."""
        if not self.by_length:
            return True  # no metadata to rule anything out
        ends = sorted(ends)
        shortest, longest, by_length = self.shortest, self.longest, self.by_length
        for start in starts:
            strip = self.strip if digits.startswith(self.country_code, start) else self.prefix_width
            prefixed: bool | None = None  # computed on first need
            for end in ends:
                size = end - start
                if size < shortest:
                    continue
                if size - strip > longest:
                    break  # ends only grow
                for k in range(max(0, size - longest), min(strip, size - shortest) + 1):
                    pattern = by_length.get(size - k)
                    if pattern is not None and pattern.fullmatch(digits, start + k, end):
                        if prefixed is None:
                            # No national prefix (nor calling code) in front: only numbers that need none qualify.
                            prefixed = digits.startswith(self.country_code, start) or (
                                self.national_prefix is None or self.national_prefix.match(digits, start) is not None)
                        if prefixed or not self.needs_prefix(digits[start + k : end]):
                            return True
        return False

    def needs_prefix(self, nsn: str) -> bool:
        """Whether the matcher (leniency VALID) rejects this number written without its national
        prefix: `_is_national_prefix_present_if_required`, for a number given in national format."""
        if self._formats is None:
            return False
        chosen = self._formats.chosen(nsn)
        return chosen is not None and self._formats.needs[chosen]

    def may_need_check(self, count: int, first: str) -> bool:
        """False when `hopeless` holds for every attempt without extension marks with `count` digits
        starting with `first`: too few digits, or too few or too many for a national number
        without an international prefix in front."""
        if count < self.min_digits:
            return False
        strip = self.strip if self.country_code.startswith(first) else self.prefix_width
        return first in self.idd_first or (self.by_length == {} or self.shortest <= count <= self.longest + strip)

    def hopeless(self, attempt: str, digits: str, marks: bool) -> bool:
        """True when parse-and-verify of `attempt` (no '+', no letters; `digits`: its ASCII digits;
        `marks`: whether it holds extension marks) in this region must fail."""
        size = len(digits)
        if size < self.min_digits:
            return True
        if self.idd is not None and digits[0] in self.idd_first and self.idd.match(digits):
            return False
        if marks:  # an extension may end the number at any digit run
            ends = list(accumulate(map(len, _DIGIT_RUNS.findall(attempt))))
            return not self.could_hold(digits, (0,), ends)
        if self.by_length:
            # One regex first: some NSN pattern after the digits parse may strip, lengths aside.
            strip = self.strip if digits.startswith(self.country_code) else self.prefix_width
            quick = self._quick.get((size, strip))
            if quick is None:
                quick = self._quick[size, strip] = self._quick_pattern(size, strip)
            if quick.fullmatch(digits) is None:
                return True
        return not self.could_hold(digits, (0,), (size,))

    def _quick_pattern(self, size: int, strip: int) -> Any:
        branches = [f"\\d{{{k}}}(?:{self.by_length[size - k].pattern})"
                    for k in range(max(0, size - self.longest), min(strip, size - self.shortest) + 1)
                    if size - k in self.by_length]
        return re.compile("|".join(branches) or "(?!)")


def _prefix_width(pattern: str | None, transform: str | None) -> int:
    """The most leading digits national-prefix parsing can remove (99: unknown). With a transform
    rule keeping group N ("\\2"), the number starts where that group does."""
    if not pattern:
        return 0
    try:
        width = analyze_shape(pattern, 0).max_width
        kept = re.fullmatch(r"\\(\d)", transform or "")
        if width is not None and kept:
            width -= group_widths(pattern).get(int(kept.group(1)), (0, None))[0]
    except ShapeError:
        return 99
    return 99 if width is None else width


# libphonenumber's own helper for the national-prefix rule (private: without it, no shortcut).
_first_group_only = getattr(phonenumberutil, "_formatting_rule_has_first_group_only", None)


class _FormatChooser:
    """`_choose_formatting_pattern_for_number` as regexes: the first format whose last leading-digits
    pattern matches the number's start and whose pattern fullmatches it. One regex per first digit
    of the number, holding (in order) only the formats whose leading digits can start with it, its
    branches named f0, f1, …; and whether each format's rule asks for the national prefix."""

    def __init__(self, metadata: Any) -> None:
        self._branches: list[tuple[str, Any]] = []
        self.needs: dict[str, bool] = {}
        for number, fmt in enumerate(metadata.number_format):
            lead = fmt.leading_digits_pattern[-1] if fmt.leading_digits_pattern else None
            self._branches.append((f"(?P<f{number}>{f'(?=(?:{lead}))' if lead else ''}(?:{fmt.pattern}))",
                                   regex.compile(lead) if lead else None))
            rule = fmt.national_prefix_formatting_rule
            self.needs[f"f{number}"] = (bool(rule) and not fmt.national_prefix_optional_when_formatting
                                        and not _first_group_only(rule))
        self._by_digit: dict[str, Any] = {}  # filled on first need

    def chosen(self, nsn: str) -> str | None:
        """The chosen format's branch name, if any."""
        first = nsn[:1]
        pattern = self._by_digit.get(first)
        if pattern is None:
            branches = [branch for branch, lead in self._branches
                        if lead is None or lead.match(first, partial=True) is not None]
            pattern = self._by_digit[first] = re.compile("|".join(branches) or "(?!)")
        found = pattern.fullmatch(nsn)
        return found.lastgroup if found is not None else None

