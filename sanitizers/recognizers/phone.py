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
   needs the national prefix where the number's format asks for it. `Region.hopeless` checks these
   necessary conditions on the attempt's digits (extracted once). A region none of whose attempts
   passes has no match in the text (the tries matter only to a region that matches): no walk.
3. **Parse once.** A candidate already matched whole in another region, none of whose pieces can
   verify here, is not parsed again (matched or not, the walk goes on from its end). An attempt with
   '+' (not followed by a 0, which may begin an international prefix) parses the same in every
   region, and a parsed number verifies the same whichever region parsed it. Outcomes are memoised
   per (attempt, region): a conversation re-sends the same numbers on every turn.
4. **Tries.** A walk counts them exactly once they could run out, and until then bounds the cost of
   candidates it need not split.

This module holds the public `PhoneFinder`: the per-region walks (tries included), `regions_for`
and the memoised parse-and-verify. The text-only candidates and attempts (1) are in
`phone_candidates`; the per-region metadata checks (2), in `phone_regions`.

Differential tests against `PhoneRecognizer` (tests/test_recognizers.py) guard the equivalence.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import phonenumbers
from phonenumbers import phonenumbermatcher, phonenumberutil, re_util

from sanitizers.recognizers.patterns import Occurrences
from sanitizers.recognizers.phone_candidates import (
    DIGIT_RUNS,
    LETTER,
    PLUS_SIGNS,
    Attempt,
    Candidate,
    CandidateScan,
)
from sanitizers.recognizers.phone_regions import (
    LONG_COUNT,
    Region,
    shortest_number_anywhere,
)

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
LENIENCY = 1  # Leniency.VALID, PhoneRecognizer's default
MAX_TRIES = 65535  # PhoneNumberMatcher's default: failed attempts a region may make per text
# Characters (besides letters) that can introduce an extension in parse's extension patterns.
_EXTENSION_MARKS = re.compile("[#;,~\uff03\uff5e]")
# parse starts at the first '+' or digit; an international prefix (which may follow a '+' whose
# country code is invalid) starts with 0 in every region.
_PLUS_FIRST = re.compile("[^+\uff0b\\d]*[+\uff0b]\\D*(\\d)")


def _ascii_digits(text: str) -> str:
    digits = "".join(DIGIT_RUNS.findall(text))
    return digits if digits.isascii() else "".join(str(unicodedata.decimal(ch)) for ch in digits)


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


class PhoneFinder:
    """Spans of valid phone numbers for `regions`: after dropping spans contained in another, those
    Presidio's PhoneRecognizer reports (some contained ones may be missing). Thread-safe."""

    def __init__(self, regions: Iterable[str] = DEFAULT_REGIONS, memo_size: int = 65536) -> None:
        # libphonenumber's own switch: keep its compiled metadata patterns rather than recompiling
        # them whenever they drop out of the re module's 512-entry cache (process-wide, harmless).
        re_util.enable_pattern_cache()
        self.regions = tuple(Region(region) for region in regions)
        self._all = tuple(range(len(self.regions)))
        self._memo = _Memo(memo_size)
        self.fewest_digits = min((r.min_digits for r in self.regions), default=0)
        self._plus_digits = 1 + shortest_number_anywhere()  # a country code and the shortest number anywhere
        # Per (digit count, first digit) of an attempt without extension marks: the regions worth a
        # closer look (counts from LONG_COUNT on: only an international prefix can help).
        self._to_check = {(count, first): tuple(i for i, region in enumerate(self.regions)
                                                if region.may_need_check(count, str(first)))
                          for count in range(LONG_COUNT + 1) for first in range(10)}
        self._by_count = [tuple(i for i, region in enumerate(self.regions) if count >= region.min_digits)
                          for count in range(LONG_COUNT + 1)]

    def clear_memo(self) -> None:
        """Forget memoised parse outcomes (benchmarks: time first sightings only)."""
        self._memo.clear()

    def find(self, text: str, occurrences: Occurrences | None = None) -> list[tuple[int, int]]:
        occurrences = occurrences if occurrences is not None else Occurrences(text)
        # Without a '+', every attempt needs this many digits: most prose stops here.
        if occurrences.digit_total() < self.fewest_digits and not any(p in text for p in PLUS_SIGNS):
            return []
        runs = occurrences.digit_runs()
        if not runs:
            return []
        scan = CandidateScan(self, text, runs)
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

    def _walk(self, scan: CandidateScan, number: int, spans: set[tuple[int, int]], exact: bool = False) -> None:
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

    def _extract(self, candidate: Candidate, number: int, tries: int) -> tuple[Attempt | None, int]:
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

    def _verifies(self, attempt: Attempt, number: int) -> bool:
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
        count = min(len(run), LONG_COUNT)
        return count >= self.fewest_digits and bool(self._to_check[count, unicodedata.digit(run[0])])

    def regions_for(self, text: str) -> tuple[tuple[int, ...], bool]:
        """The regions in which `text` (past the region-free checks) may verify, and whether its
        outcome is the same in all of them ('+' and a country code)."""
        if text.isdecimal():
            digits = text if text.isascii() else _ascii_digits(text)
        else:
            if LETTER.search(text):
                return self._all, False  # parse may turn letters into digits (vanity numbers): let it decide
            digits = _ascii_digits(text)
            plus = _PLUS_FIRST.match(text)
            if plus is not None or any(p in text for p in PLUS_SIGNS):
                if len(digits) < self._plus_digits:
                    return (), False
                # After '+', an invalid country code (only a 0 can lead to one that region metadata
                # reads as an international prefix) leaves the number to the region.
                return self._all, plus is not None and plus.group(1) != "0" and plus.group(1).isascii()
        count = min(len(digits), LONG_COUNT)
        if count < self.fewest_digits:
            return (), False
        marks = _EXTENSION_MARKS.search(text) is not None
        to_check = self._by_count[count] if marks else self._to_check[count, int(digits[0])]
        regions = self.regions
        return tuple(i for i in to_check if not regions[i].hopeless(text, digits, marks)), False
