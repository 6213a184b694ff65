"""Phone numbers exactly as Presidio's `PhoneRecognizer` finds them, at a fraction of the cost.

Presidio runs libphonenumber's `PhoneNumberMatcher` over the whole text once per region (US, GB, DE,
FR, IL, IN, CA, BR), leniency VALID, and scores every match 0.4 before context words. Here the real
matcher still decides every match, but:

1. **Windows.** A matcher candidate is a run of characters its pattern can consume (digits, phone
   punctuation, extension labels) holding a digit. The matcher runs only on such runs (found with
   `sanitizers.recognizers.patterns`) plus the few characters it inspects around a candidate (the
   previous and next one, a ":mm" time-stamp suffix); matches outside the run proper are dropped.
2. **Regions ruled out.** Without '+', an international prefix or extension labels, `parse` reads
   a candidate's digits as a national number and may strip only a few leading digits (calling
   code, national or carrier prefix); `is_valid_number` then needs the rest to have one of the
   region's lengths and fullmatch one of its number-type patterns, and leniency VALID needs the
   national prefix where the number's format asks for it. `_Region` checks these necessary
   conditions on a window's digits — and again on each candidate before `parse`, where the
   matcher spends its time. A region no candidate can satisfy gets no matcher at all.
3. **Memo.** Parse-and-verify outcomes are cached per (candidate, region, neighbouring characters):
   a conversation re-sends the same numbers on every turn.

Differential tests against `PhoneRecognizer` (tests/test_recognizers.py) guard the equivalence.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import phonenumbers
import regex
from phonenumbers import (
    PhoneNumberMatcher,
    phonenumbermatcher,
    phonenumberutil,
    re_util,
)
from phonenumbers.phonemetadata import PhoneMetadata

from sanitizers.recognizers.patterns import Occurrences, WindowedPattern
from sanitizers.recognizers.shape import ShapeError, analyze_shape, group_widths

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
LENIENCY = 1  # Leniency.VALID, PhoneRecognizer's default
_CONTEXT_CHARS = 4  # previous/next character and the ":mm" time-stamp check
_PLUS = ("+", "\uff0b")
_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip",
                 "pager", "uan", "voicemail")
# Characters (besides letters) that can introduce an extension in parse's extension patterns.
_EXTENSION_MARKS = re.compile("[#;,~\uff03\uff5e]")
_DIGITS = re.compile(r"\d+")
# libphonenumber's extension labels for matching, and 'x' (also phone punctuation); a letter run
# inside a candidate is always one of these, whole (digits or separators on both sides).
_LABEL_WORD = re.compile(
    "(?:e?xt(?:ensi(?:o\u0301?|\u00f3))?n?|\uff45?\uff58\uff54\uff4e?|\u0434\u043e\u0431|anexo|"
    "[x\uff58]|int|\uff49\uff4e\uff54)", re.IGNORECASE)
_LETTER_RUNS = regex.compile(r"[\p{L}\p{M}]+")
_LETTER = re.compile(r"[^\W\d_]")
# Without letters, the matcher's extension patterns need one of these ("… # 123", "… ~ 45").
_EXTENSION_LABELS = re.compile("[#~\uff03\uff5e]")
# The matcher's candidate pattern takes at most 21 blocks of at most 20 digits.
_LONGEST_CANDIDATE_RUN = 400
_INTERNATIONAL = re.compile("[^+\uff0b\\d]*[+\uff0b]")  # parse starts at the first '+' or digit
_CORE = re.compile(r"\d.*\d|\d", re.DOTALL)  # first digit to last digit


def _ascii_digits(text: str) -> str:
    digits = "".join(_DIGITS.findall(text))
    return digits if digits.isascii() else "".join(str(unicodedata.decimal(ch)) for ch in digits)


def _digit_count(text: str) -> int:
    return sum(ch.isdecimal() or ch.isalpha() for ch in text)  # letters may become digits


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


class _Memo:
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)


class _Region:
    """What a candidate needs before `parse` can find a valid number of this region in it.

    Without '+', an international prefix or letters, `parse` reads the candidate's digits as a
    national number: it may strip this country's calling code and a national (or carrier) prefix
    from the front, and an extension from the back — nothing else. `is_valid_number` then needs the
    rest, the national significant number (NSN), to have one of the region's possible lengths and to
    fullmatch one of its number-type patterns (fixed line, mobile, …; any region sharing the
    calling code counts). So the NSN is the candidate's digits less at most `strip` leading ones
    (and, past an extension mark, less an extension)."""

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
        self.min_digits = min(_shortest_number(region), _shortest_idd(region) + 1 + _global_shortest())
        # The calling code, then a national prefix twice (once while extracting the calling code,
        # once more on the national number: "49 0 0 948…" parses as a German 948…).
        self.strip = len(str(metadata.country_code)) + 2 * _prefix_width(
            metadata.national_prefix_for_parsing, metadata.national_prefix_transform_rule)
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
        # Leniency VALID also wants the national prefix ("0 30 …") where the number's format rule
        # asks for one, unless the calling code was read from the digits ("49 30 …").
        main = PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_country_code(metadata.country_code))
        self._main = main
        self.country_code = str(metadata.country_code)
        prefix = main.national_prefix_for_parsing if main is not None else None
        self.national_prefix = re.compile(prefix) if prefix else None
        self._formats, self._format_needs_prefix = _format_chooser(main)

    def could_hold(self, digits: str, starts: Iterable[int], ends: Iterable[int]) -> bool:
        """Whether some digits[s + k : e] (s in starts: where the candidate's digits begin; e in
        ends; k ≤ strip) can be the NSN of a number the matcher accepts."""
        if not self.by_length:
            return True  # no metadata to rule anything out
        ends = sorted(ends)
        shortest, longest, strip, by_length = self.shortest, self.longest, self.strip, self.by_length
        for start in starts:
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
        chosen = self._formats.fullmatch(nsn)
        return chosen is not None and self._format_needs_prefix[chosen.lastgroup]

    def hopeless_window(self, digits: str, starts: Iterable[int], ends: list[int],
                        first_digits: frozenset[str] | None = None) -> bool:
        """True when no candidate in a window (no '+', no letters) can hold a valid number of this
        region. Without extension labels, every string the matcher parses there starts at the start
        of a digit run and ends at the end of one (after trimming), so the NSN is a substring of the
        window's `digits` from a run start (+ ≤ strip) to a run end (the caller widens both sets
        where that does not hold)."""
        if len(digits) < self.min_digits:
            return True
        starts = list(starts)
        maybe_idd = self.idd is not None and (first_digits is None or not first_digits.isdisjoint(self.idd_first))
        if maybe_idd and any(self.idd.match(digits, start) for start in starts):
            return False  # an international prefix where a candidate starts: any country's number
        if len(digits) < self.shortest:
            return True
        return not self.could_hold(digits, starts, ends)

    def hopeless(self, candidate: str) -> bool:
        """True when parse-and-verify of `candidate` in this region must fail."""
        if _LETTER.search(candidate):
            return False  # parse may turn letters into digits (vanity numbers): let it decide
        digits = _ascii_digits(candidate)
        if any(p in candidate for p in _PLUS):
            return len(digits) < 1 + _global_shortest()  # a country code and the shortest number anywhere
        if len(digits) < self.min_digits:
            return True
        if self.idd is not None and self.idd.match(digits):
            return False
        if _EXTENSION_MARKS.search(candidate):  # an extension may end the number at any digit run
            ends = list(accumulate(map(len, _DIGITS.findall(candidate))))
            return not self.could_hold(digits, (0,), ends)
        return not self.could_hold(digits, (0,), (len(digits),))


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


def _format_chooser(metadata: Any) -> tuple[Any, dict[str, bool]]:
    """One regex doing `_choose_formatting_pattern_for_number` (the first format whose last
    leading-digits pattern matches the number's start and whose pattern fullmatches it), its
    branches named f0, f1, …, and whether each format's rule asks for the national prefix."""
    if metadata is None or _first_group_only is None or not metadata.number_format:
        return None, {}
    branches, needs = [], {}
    for number, fmt in enumerate(metadata.number_format):
        leading = f"(?=(?:{fmt.leading_digits_pattern[-1]}))" if fmt.leading_digits_pattern else ""
        branches.append(f"(?P<f{number}>{leading}(?:{fmt.pattern}))")
        rule = fmt.national_prefix_formatting_rule
        needs[f"f{number}"] = bool(rule) and not fmt.national_prefix_optional_when_formatting and not _first_group_only(rule)
    return re.compile("|".join(branches)), needs


_NO_MATCH = object()


class _Matcher(PhoneNumberMatcher):  # type: ignore[misc]
    """libphonenumber's matcher, rejecting hopeless candidates before parsing, and memoising."""

    def __init__(self, text: str, region: _Region, memo: _Memo) -> None:
        super().__init__(text, region.code, leniency=LENIENCY)
        self._region = region
        self._memo = memo

    def _parse_and_verify(self, candidate: str, offset: int) -> Any:
        if self._region.hopeless(candidate):
            return None
        text = self.text
        end = offset + len(candidate)
        # A number written with '+' parses and verifies the same whatever the default region.
        region = "+" if _INTERNATIONAL.match(candidate) else self.preferred_region
        key = (candidate, region, text[offset - 1] if offset else "", text[end] if end < len(text) else "")
        found = self._memo.get(key)
        if found is None:
            match = super()._parse_and_verify(candidate, offset)
            self._memo.put(key, match.number if match is not None else _NO_MATCH)
            return match
        if found is _NO_MATCH:
            return None
        return phonenumbermatcher.PhoneNumberMatch(offset, candidate, found)


class PhoneFinder:
    """Spans of valid phone numbers for `regions`, as Presidio's PhoneRecognizer reports them
    (before its duplicate removal). Thread-safe."""

    def __init__(self, regions: Iterable[str] = DEFAULT_REGIONS, memo_size: int = 65536) -> None:
        # libphonenumber's own switch: keep its compiled metadata patterns rather than recompiling
        # them whenever they drop out of the re module's 512-entry cache (process-wide, harmless).
        re_util.enable_pattern_cache()
        self.regions = tuple(_Region(region) for region in regions)
        candidate = phonenumbermatcher._PATTERN
        # The matcher's own candidate pattern (stdlib `re`), so the runs hold every candidate.
        self._candidates = WindowedPattern(candidate.pattern, candidate.flags, engine=re)
        self._memo = _Memo(memo_size)
        self._fewest_digits = min((r.min_digits for r in self.regions), default=0)

    def clear_memo(self) -> None:
        """Forget memoised parse outcomes (benchmarks: time first sightings only)."""
        self._memo.clear()

    def find(self, text: str, occurrences: Occurrences | None = None) -> list[tuple[int, int]]:
        occurrences = occurrences if occurrences is not None else Occurrences(text)
        # Without a '+', every window needs this many digits (`_regions_for`): most prose stops here.
        if occurrences.digit_total() < self._fewest_digits and not any(p in text for p in _PLUS):
            return []
        spans: set[tuple[int, int]] = set()
        n = len(text)
        for low, high in self._candidates.windows(occurrences):
            regions = self._regions_for(text[low:high])
            if not regions:
                continue
            start = max(0, low - _CONTEXT_CHARS)
            piece = text[start : min(n, high + _CONTEXT_CHARS)]
            for region in regions:
                for match in _Matcher(piece, region, self._memo):
                    s, e = match.start + start, match.end + start
                    if low <= s and e <= high:
                        spans.add((s, e))
        return sorted(spans)

    def _regions_for(self, window: str) -> list[_Region]:
        """The regions in which some candidate of this window could be a valid number."""
        if any(p in window for p in _PLUS):  # any country: only the digit count can rule it out
            count = _digit_count(window)
            return [r for r in self.regions if count >= min(r.min_digits, 1 + _global_shortest())]
        # Candidates start and end with digits: letters before the first digit or after the last
        # one are in no candidate.
        core = _CORE.search(window)
        if core is None:
            return []
        inner = core.group()
        digits = _ascii_digits(inner)
        if len(digits) < self._fewest_digits:
            return []
        # Inside, a candidate holds letters only as a whole extension label ("ext", "x", "anexo", …):
        # with one, letters may turn into digits and extensions cut numbers anywhere, so every
        # region stays; other words only separate candidates, like any non-digit.
        if _LETTER.search(inner) and any(_LABEL_WORD.fullmatch(run) for run in _LETTER_RUNS.findall(inner)):
            return list(self.regions)
        runs = [m.end() - m.start() for m in _DIGITS.finditer(inner)]
        ends = list(accumulate(runs))
        starts: Iterable[int] = [end - length for end, length in zip(ends, runs)]
        if _EXTENSION_LABELS.search(inner) or max(runs) > _LONGEST_CANDIDATE_RUN:
            # An extension's digit limit, or the matcher's block limit, can end a candidate inside
            # a digit run: the next one starts there.
            starts = range(len(digits))
            ends = list(range(1, len(digits) + 1))
        count = len(digits)
        starts = list(starts)
        first_digits = frozenset(digits[start] for start in starts if start < count)
        return [r for r in self.regions
                if count >= r.min_digits and not r.hopeless_window(digits, starts, ends, first_digits)]


def _global_shortest() -> int:
    """A lower bound on the digits of any valid national number, in any region: libphonenumber's
    own minimum (reading every region's metadata for the true minimum, 4, costs ~0.1 s)."""
    return int(getattr(phonenumberutil, "_MIN_LENGTH_FOR_NSN", 2))
