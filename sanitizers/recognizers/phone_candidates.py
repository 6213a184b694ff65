"""The text-only half of libphonenumber's `PhoneNumberMatcher` walk, shared by every region's walk in
`phone.PhoneFinder`.

`CandidateScan` finds the matcher's candidates (its pattern searched from an index, trimmed at a
second number's start), rejects slash dates and time stamps, and splits a candidate into the
attempts the matcher would parse: the whole candidate, then its inner pieces (at slashes, brackets,
dashes, dots, spaces), with the tries all of them failing would use up. Each `Attempt` carries the
region-free checks (brackets, page ranges, neighbouring letters or currency signs) and the regions
that could verify it (`PhoneFinder.regions_for`, ruled out by `phone_regions`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from phonenumbers import PhoneNumberMatcher, phonenumbermatcher, phonenumberutil

if TYPE_CHECKING:  # only for annotations: phone imports this module
    from sanitizers.recognizers.phone import PhoneFinder

PLUS_SIGNS = ("+", "\uff0b")
DIGIT_RUNS = re.compile(r"\d+")
LETTER = re.compile(r"[^\W\d_]")
# Every inner-match pattern needs one of these; a candidate without any is attempted whole only.
_INNER_SPLIT = re.compile("[/(.\\s\u2012-\u2015\uff0d]")
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


class Attempt:
    """One string the matcher parses and verifies (at `offset`), with what holds in every region:
    `regions`, the indices of the regions whose parse could verify it (empty when a region-free
    check fails), and `plus`, whether its outcome is the same in every region."""

    __slots__ = ("end", "offset", "plus", "regions", "text")

    def __init__(self, text: str, offset: int, regions: tuple[int, ...], plus: bool) -> None:
        self.text, self.offset, self.end = text, offset, offset + len(text)
        self.regions, self.plus = regions, plus


class Candidate:
    """A match of the matcher's pattern, trimmed: `start`, `end`, `rejected` (a slash date or a time
    stamp: no attempt), and its attempts — the whole candidate, then the inner ones grouped as the
    matcher's loop checks its tries (the first inner match of each pattern brings the text before it
    as well) — with `cost`, the tries all attempts failing use up, and `regions`, those in which one
    of them may verify. A candidate with too few digits for any region (no '+', no letters) has no
    such attempt, whatever its pieces: it is not split unless a walk needs its exact `cost`; until
    then `most_cost` bounds it."""

    __slots__ = ("cost", "end", "inner", "inner_regions", "most_cost", "regions", "rejected", "start", "text",
                 "whole")

    def __init__(self, scan: CandidateScan, start: int, text: str) -> None:
        self.start, self.text, self.end = start, text, start + len(text)
        self.whole: Attempt | None = None
        self.inner: list[tuple[Attempt, ...]] = []
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

    def _expand(self, scan: CandidateScan) -> None:
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

    def ensure_expanded(self, scan: CandidateScan) -> None:
        """Attempts listed even when none can verify (a region near its last tries needs the count)."""
        if self.whole is None and not self.rejected:
            self._expand(scan)


class CandidateScan:
    """One text's candidates and attempts, shared by the regions' walks."""

    def __init__(self, finder: PhoneFinder, text: str, runs: list[tuple[int, int, str]]) -> None:
        self.finder = finder
        self.text = text
        self._runs = runs
        self._run_ends = [end for _, end, _ in runs]
        self._by_start: dict[int, Candidate] = {}
        self._from: dict[int, Candidate | None] = {}
        self._attempts: dict[tuple[str, int], Attempt] = {}
        self._regions: dict[str, tuple[tuple[int, ...], bool]] = {}

    def candidate_from(self, index: int) -> Candidate | None:
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
                    found = self._by_start[start] = Candidate(self, start, trimmed)
        self._from[index] = found
        return found

    def may_verify(self, text: str) -> bool:
        """False when no piece of `text` has the digits any region needs."""
        if LETTER.search(text) or any(p in text for p in PLUS_SIGNS):
            return True
        return sum(map(len, DIGIT_RUNS.findall(text))) >= self.finder.fewest_digits

    def attempt(self, text: str, offset: int) -> Attempt:
        key = (text, offset)
        found = self._attempts.get(key)
        if found is None:
            found = self._attempts[key] = self._new_attempt(text, offset)
        return found

    def _new_attempt(self, text: str, offset: int) -> Attempt:
        cached = self._regions.get(text)
        if cached is None:
            cached = self._regions[text] = self.finder.regions_for(text)
        if not cached[0] or not self._passes_checks(text, offset):
            return Attempt(text, offset, (), False)
        return Attempt(text, offset, *cached)

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
