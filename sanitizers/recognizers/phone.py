"""Phone numbers exactly as Presidio's `PhoneRecognizer` finds them, at a fraction of the cost.

Presidio runs libphonenumber's `PhoneNumberMatcher` over the whole text once per region (US, GB, DE,
FR, IL, IN, CA, BR), leniency VALID, scores every match 0.4 and drops spans contained in another.
The matcher's walk is the same in every region but for the step that parses and verifies a string:
search its candidate pattern from an index, trim the match, skip it if it is a slash date or a time
stamp, else try ("attempt") the whole candidate, then its inner pieces (split at slashes, brackets,
dashes, dots, spaces); each attempt is first checked without the region (brackets balanced, no page
range, no Latin letter, currency sign or '%' next to it). A verified attempt is a match and the
search goes on from its end, otherwise from the candidate's end; each failed attempt uses up one of
65535 tries per region and text. Here that walk is reproduced, not run 8 times:

1. **Shared candidates.** Candidates, their attempts and the region-free checks depend on the text
   only: they are computed once per text (searching only from just before each digit run), and
   every region's walk reads them; a region resumes elsewhere only after a match of its own.
2. **Regions ruled out.** Without '+', an international prefix or letters, `parse` reads an attempt's
   digits as a national number and strips at most a national (or carrier) prefix — after the
   calling code, at most the code and two prefixes; `is_valid_number` then needs the rest to have
   one of the region's lengths and to fullmatch one of its number-type patterns, and leniency VALID
   needs the national prefix where the number's format asks for it. `_Region.hopeless` checks these
   necessary conditions on the attempt's digits (extracted once). A region none of whose attempts
   passes has no match in the text (the tries matter only to a region that matches): no walk.
3. **Parse once.** A candidate already matched whole in another region, none of whose pieces can
   verify here, is not parsed again (matched or not, the walk goes on from its end). An attempt with
   '+' (not followed by a 0, which may begin an international prefix) parses the same in every
   region, and a parsed number verifies the same whichever region parsed it. Outcomes are memoised
   per (attempt, region): a conversation re-sends the same numbers on every turn.
4. **Tries.** A walk counts them exactly once they could run out, and until then bounds the cost of
   candidates it need not split.

Differential tests against `PhoneRecognizer` (tests/test_recognizers.py) guard the equivalence.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_right
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

from sanitizers.recognizers.patterns import Occurrences
from sanitizers.recognizers.shape import ShapeError, analyze_shape, group_widths

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
LENIENCY = 1  # Leniency.VALID, PhoneRecognizer's default
MAX_TRIES = 65535  # PhoneNumberMatcher's default: failed attempts a region may make per text
_PLUS = ("+", "\uff0b")
_NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip",
                 "pager", "uan", "voicemail")
# Characters (besides letters) that can introduce an extension in parse's extension patterns.
_EXTENSION_MARKS = re.compile("[#;,~\uff03\uff5e]")
_DIGITS = re.compile(r"\d+")
_LETTER = re.compile(r"[^\W\d_]")
_LONG_COUNT = 64  # more digits than any national number with every prefix parse may strip
# Every inner-match pattern needs one of these; a candidate without any is attempted whole only.
_INNER_SPLIT = re.compile("[/(.\\s\u2012-\u2015\uff0d]")
# parse starts at the first '+' or digit; an international prefix (which may follow a '+' whose
# country code is invalid) starts with 0 in every region.
_PLUS_FIRST = re.compile("[^+\uff0b\\d]*[+\uff0b]\\D*(\\d)")
# The matcher's own patterns (module level in phonenumbers).
_PATTERN = phonenumbermatcher._PATTERN
_INNER_MATCHES = phonenumbermatcher._INNER_MATCHES
_SLASH_SEPARATED_DATES = phonenumbermatcher._SLASH_SEPARATED_DATES
_TIME_STAMPS = phonenumbermatcher._TIME_STAMPS
_TIME_STAMPS_SUFFIX = phonenumbermatcher._TIME_STAMPS_SUFFIX
_MATCHING_BRACKETS = phonenumbermatcher._MATCHING_BRACKETS
_PUB_PAGES = phonenumbermatcher._PUB_PAGES
_LEAD_PATTERN = phonenumbermatcher._LEAD_PATTERN
_SECOND_NUMBER_START = phonenumberutil._SECOND_NUMBER_START_PATTERN
_UNWANTED_END_CHAR = phonenumberutil._UNWANTED_END_CHAR_PATTERN


def _most(quantifier: str) -> int:
    return int(quantifier.strip("{}").split(",")[1])


# _PATTERN's leading part, "(?:[(\[（［+＋][punctuation]{0,4}){0,2}", spans at most this many characters.
_LEAD_WIDTH = _most(phonenumbermatcher._LEAD_LIMIT) * (1 + _most(phonenumbermatcher._PUNCTUATION_LIMIT))


def _ascii_digits(text: str) -> str:
    digits = "".join(_DIGITS.findall(text))
    return digits if digits.isascii() else "".join(str(unicodedata.decimal(ch)) for ch in digits)


def _trim_after(pattern: Any, text: str) -> str:
    """The matcher's `_trim_after_first_match`."""
    found = pattern.search(text)
    return text[: found.start()] if found else text


class _BadNeighbour(dict[str, bool]):
    """Whether a character next to an attempt rules it out at leniency VALID (a Latin letter, a
    currency symbol or '%'), memoised per character (single dict operations: thread-safe)."""

    def __missing__(self, char: str) -> bool:
        bad = self[char] = bool(PhoneNumberMatcher._is_invalid_punctuation_symbol(char)
                                or PhoneNumberMatcher._is_latin_letter(char))
        return bad


_BAD_NEIGHBOUR = _BadNeighbour()


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


def _global_shortest() -> int:
    """A lower bound on the digits of any valid national number, in any region: libphonenumber's
    own minimum (reading every region's metadata for the true minimum, 4, costs ~0.1 s)."""
    return int(getattr(phonenumberutil, "_MIN_LENGTH_FOR_NSN", 2))


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
        self.min_digits = min(_shortest_number(region), _shortest_idd(region) + 1 + _global_shortest())
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
        assert self.longest + self.strip < _LONG_COUNT or self.strip >= 99
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
            ends = list(accumulate(map(len, _DIGITS.findall(attempt))))
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


class _Attempt:
    """One string the matcher parses and verifies (at `offset`), with what holds in every region:
    `regions`, the indices of the regions whose parse could verify it (empty when a region-free
    check fails), and `plus`, whether its outcome is the same in every region."""

    __slots__ = ("end", "offset", "plus", "regions", "text")

    def __init__(self, text: str, offset: int, regions: tuple[int, ...], plus: bool) -> None:
        self.text, self.offset, self.end = text, offset, offset + len(text)
        self.regions, self.plus = regions, plus


class _Candidate:
    """A match of the matcher's pattern, trimmed: `start`, `end`, `rejected` (a slash date or a time
    stamp: no attempt), and its attempts — the whole candidate, then the inner ones grouped as the
    matcher's loop checks its tries (the first inner match of each pattern brings the text before it
    as well) — with `cost`, the tries all attempts failing use up, and `regions`, those in which one
    of them may verify. A candidate with too few digits for any region (no '+', no letters) has no
    such attempt, whatever its pieces: it is not split unless a walk needs its exact `cost`; until
    then `most_cost` bounds it."""

    __slots__ = ("cost", "end", "inner", "inner_regions", "most_cost", "regions", "rejected", "start", "text",
                 "whole")

    def __init__(self, scan: _Scan, start: int, text: str) -> None:
        self.start, self.text, self.end = start, text, start + len(text)
        self.whole: _Attempt | None = None
        self.inner: list[tuple[_Attempt, ...]] = []
        self.cost = 1
        self.regions: frozenset[int] = frozenset()
        self.inner_regions: frozenset[int] = frozenset()
        if text.isdecimal():
            # A bare digit run (most numbers in prose): no date, time stamp or inner piece.
            self.rejected = False
            self.most_cost = 1
            if scan.finder.digit_run_may_verify(text):
                self._expand(scan)
            return
        self.rejected = bool(_SLASH_SEPARATED_DATES.search(text)) or bool(
            _TIME_STAMPS.search(text) and _TIME_STAMPS_SUFFIX.match(scan.text, self.end))
        # Every inner pattern matches at most once per position, and the first match brings one more.
        self.most_cost = 1 + len(_INNER_MATCHES) * (len(text) + 2)
        if not self.rejected and scan.may_verify(text):
            self._expand(scan)

    def _expand(self, scan: _Scan) -> None:
        text, start = self.text, self.start
        self.whole = scan.attempt(text, start)
        inner_regions: set[int] = set()
        if _INNER_SPLIT.search(text):
            for pattern in _INNER_MATCHES:
                found = pattern.search(text)
                first = True
                while found:
                    group = scan.attempt(_trim_after(_UNWANTED_END_CHAR, found.group(1)), start + found.start(1))
                    if first:
                        before = scan.attempt(_trim_after(_UNWANTED_END_CHAR, text[: found.start()]), start)
                        self.inner.append((before, group))
                        inner_regions.update(before.regions)
                        first = False
                    else:
                        self.inner.append((group,))
                    inner_regions.update(group.regions)
                    found = pattern.search(text, found.start() + 1)
        self.cost = 1 + sum(map(len, self.inner))
        self.inner_regions = frozenset(inner_regions)
        self.regions = self.inner_regions.union(self.whole.regions)

    def ensure_expanded(self, scan: _Scan) -> None:
        """Attempts listed even when none can verify (a region near its last tries needs the count)."""
        if self.whole is None and not self.rejected:
            self._expand(scan)


class _Scan:
    """One text's candidates and attempts, shared by the regions' walks."""

    def __init__(self, finder: PhoneFinder, text: str, runs: list[tuple[int, int, str]]) -> None:
        self.finder = finder
        self.text = text
        self._runs = runs
        self._run_ends = [end for _, end, _ in runs]
        self._by_start: dict[int, _Candidate] = {}
        self._from: dict[int, _Candidate | None] = {}
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._regions: dict[str, tuple[tuple[int, ...], bool]] = {}

    def candidate_from(self, index: int) -> _Candidate | None:
        """The candidate `_PATTERN.search(text, index)` finds. A match holds a digit at most
        `_LEAD_WIDTH` characters after its start, so the search starts that far before the first
        digit run ending after `index` (no earlier position can start a match)."""
        if index in self._from:
            return self._from[index]
        found = None
        number = bisect_right(self._run_ends, index)
        if number < len(self._runs):
            match = _PATTERN.search(self.text, max(index, self._runs[number][0] - _LEAD_WIDTH))
            if match is not None:
                start = match.start()
                found = self._by_start.get(start)
                if found is None:
                    trimmed = _trim_after(_SECOND_NUMBER_START, match.group())
                    found = self._by_start[start] = _Candidate(self, start, trimmed)
        self._from[index] = found
        return found

    def may_verify(self, text: str) -> bool:
        """False when no piece of `text` has the digits any region needs."""
        if _LETTER.search(text) or any(p in text for p in _PLUS):
            return True
        return sum(map(len, _DIGITS.findall(text))) >= self.finder.fewest_digits

    def attempt(self, text: str, offset: int) -> _Attempt:
        key = (text, offset)
        found = self._attempts.get(key)
        if found is None:
            found = self._attempts[key] = self._new_attempt(text, offset)
        return found

    def _new_attempt(self, text: str, offset: int) -> _Attempt:
        cached = self._regions.get(text)
        if cached is None:
            cached = self._regions[text] = self.finder.regions_for(text)
        if not cached[0] or not self._passes_checks(text, offset):
            return _Attempt(text, offset, (), False)
        return _Attempt(text, offset, *cached)

    def _passes_checks(self, text: str, offset: int) -> bool:
        """The matcher's region-free checks: brackets, page ranges (neither can fail on bare
        digits), then (leniency VALID) the neighbouring characters — the previous one only when the
        attempt does not start with a bracket or plus."""
        if not text.isdecimal() and (_MATCHING_BRACKETS.fullmatch(text) is None or _PUB_PAGES.search(text)):
            return False
        full = self.text
        end = offset + len(text)
        if offset > 0 and not _LEAD_PATTERN.match(text) and _BAD_NEIGHBOUR[full[offset - 1]]:
            return False
        return end >= len(full) or not _BAD_NEIGHBOUR[full[end]]


class PhoneFinder:
    """Spans of valid phone numbers for `regions`: after dropping spans contained in another, those
    Presidio's PhoneRecognizer reports (some contained ones may be missing). Thread-safe."""

    def __init__(self, regions: Iterable[str] = DEFAULT_REGIONS, memo_size: int = 65536) -> None:
        # libphonenumber's own switch: keep its compiled metadata patterns rather than recompiling
        # them whenever they drop out of the re module's 512-entry cache (process-wide, harmless).
        re_util.enable_pattern_cache()
        self.regions = tuple(_Region(region) for region in regions)
        self._all = tuple(range(len(self.regions)))
        self._memo = _Memo(memo_size)
        self.fewest_digits = min((r.min_digits for r in self.regions), default=0)
        self._plus_digits = 1 + _global_shortest()  # a country code and the shortest number anywhere
        # Per (digit count, first digit) of an attempt without extension marks: the regions worth a
        # closer look (counts from _LONG_COUNT on: only an international prefix can help).
        self._to_check = {(count, first): tuple(i for i, region in enumerate(self.regions)
                                                if region.may_need_check(count, str(first)))
                          for count in range(_LONG_COUNT + 1) for first in range(10)}
        self._by_count = [tuple(i for i, region in enumerate(self.regions) if count >= region.min_digits)
                          for count in range(_LONG_COUNT + 1)]

    def clear_memo(self) -> None:
        """Forget memoised parse outcomes (benchmarks: time first sightings only)."""
        self._memo.clear()

    def find(self, text: str, occurrences: Occurrences | None = None) -> list[tuple[int, int]]:
        occurrences = occurrences if occurrences is not None else Occurrences(text)
        # Without a '+', every attempt needs this many digits: most prose stops here.
        if occurrences.digit_total() < self.fewest_digits and not any(p in text for p in _PLUS):
            return []
        runs = occurrences.digit_runs()
        if not runs:
            return []
        scan = _Scan(self, text, runs)
        # The shared walk (no region matching): which regions could match at all.
        hopeful: set[int] = set()
        index = 0
        while (candidate := scan.candidate_from(index)) is not None:
            hopeful |= candidate.regions
            index = candidate.end
        spans: set[tuple[int, int]] = set()
        for number in sorted(hopeful):
            self._walk(scan, number, spans)
        return sorted(spans)

    def _walk(self, scan: _Scan, number: int, spans: set[tuple[int, int]], exact: bool = False) -> None:
        """The matcher's walk in one region: adds its matches to `spans`. Unless `exact`, candidates
        no attempt of which can verify here are not split into attempts (their cost is bounded from
        above), and a candidate already matched whole is not parsed again; once the tries left could
        run low, the walk starts over, exact."""
        index, tries = 0, MAX_TRIES
        while tries > 0 and (candidate := scan.candidate_from(index)) is not None:
            if not exact and tries <= candidate.most_cost:
                self._walk(scan, number, spans, exact=True)  # the tries left may decide something here
                return
            index = candidate.end
            if candidate.rejected:
                tries -= 1
                continue
            if number not in candidate.regions:
                if exact:
                    candidate.ensure_expanded(scan)
                cost = candidate.cost if candidate.whole is not None else candidate.most_cost
                if tries > cost:
                    tries -= cost
                    continue
            elif not exact and (candidate.start, candidate.end) in spans and number not in candidate.inner_regions:
                # Another region matched the whole candidate and no piece of it can verify here:
                # verified here or not, the walk goes on from its end; only the tries may differ.
                tries -= candidate.cost
                continue
            match, tries = self._extract(candidate, number, tries)
            if match is not None:
                spans.add((match.offset, match.end))
                index = match.end

    def _extract(self, candidate: _Candidate, number: int, tries: int) -> tuple[_Attempt | None, int]:
        """The matcher's `_extract_match` after the date and time-stamp checks: the attempt verified
        in this region, if any, and the tries left."""
        whole = candidate.whole
        assert whole is not None
        if self._verifies(whole, number):
            return whole, tries
        for group in candidate.inner:
            if tries <= 0:
                break  # the matcher checks its tries before each inner match
            for attempt in group:
                if self._verifies(attempt, number):
                    return attempt, tries
                tries -= 1
        return None, tries - 1

    def _verifies(self, attempt: _Attempt, number: int) -> bool:
        if number not in attempt.regions:
            return False
        region = self.regions[number].code
        key = (attempt.text, "+" if attempt.plus else region)
        outcome = self._memo.get(key)
        if outcome is None:
            outcome = self._memo_verify(attempt.text, region)
            self._memo.put(key, outcome)
        return outcome

    def _memo_verify(self, text: str, region: str) -> bool:
        """`_parse_and_verify` past its region-free checks; a number parsed the same way in two
        regions (e.g. US and CA) is verified once."""
        try:
            number = phonenumbers.parse(text, region, keep_raw_input=True)
        except phonenumberutil.NumberParseException:
            return False
        key = ("verify", text, number.country_code, number.national_number, number.extension,
               number.italian_leading_zero, number.number_of_leading_zeros, number.country_code_source,
               number.preferred_domestic_carrier_code)
        outcome = self._memo.get(key)
        if outcome is None:
            outcome = bool(phonenumbermatcher._verify(LENIENCY, number, text, None))
            self._memo.put(key, outcome)
        return outcome

    def digit_run_may_verify(self, run: str) -> bool:
        """Whether some region is worth a closer look at a bare digit run (see `regions_for`)."""
        count = min(len(run), _LONG_COUNT)
        return count >= self.fewest_digits and bool(self._to_check[count, unicodedata.digit(run[0])])

    def regions_for(self, text: str) -> tuple[tuple[int, ...], bool]:
        """The regions in which `text` (past the region-free checks) may verify, and whether its
        outcome is the same in all of them ('+' and a country code)."""
        if text.isdecimal():
            digits = text if text.isascii() else _ascii_digits(text)
        else:
            if _LETTER.search(text):
                return self._all, False  # parse may turn letters into digits (vanity numbers): let it decide
            digits = _ascii_digits(text)
            plus = _PLUS_FIRST.match(text)
            if plus is not None or any(p in text for p in _PLUS):
                if len(digits) < self._plus_digits:
                    return (), False
                # After '+', an invalid country code (only a 0 can lead to one that region metadata
                # reads as an international prefix) leaves the number to the region.
                return self._all, plus is not None and plus.group(1) != "0" and plus.group(1).isascii()
        count = min(len(digits), _LONG_COUNT)
        if count < self.fewest_digits:
            return (), False
        marks = _EXTENSION_MARKS.search(text) is not None
        to_check = self._by_count[count] if marks else self._to_check[count, int(digits[0])]
        regions = self.regions
        return tuple(i for i in to_check if not regions[i].hopeless(text, digits, marks)), False
