"""Windowed regex matching: run each pattern only where one of its matches can be.

Presidio runs every pattern over the whole text. Almost every pattern needs something rare — a run
of digits, an ``@``, a ``:`` — which `sanitizers.recognizers.shape` reads from the pattern once, at
build time, with the pattern's width and alphabet (every character a match can consume).

At analysis time `WindowedPattern.matches` skips a pattern whose trigger does not occur, and runs it
either over the whole text or — when its triggers are few for the text's length — only over windows
around the triggers' occurrences: each window is the run of alphabet characters around a trigger, cut to ``width`` on each
side. Every match lies inside one window (it consumes only alphabet characters, contains a trigger
and is at most ``width`` long) and windows are disjoint, so the scan finds exactly the matches a
whole-text ``finditer`` finds: look-behinds still see the text before a window (``pos`` does not cut
it), and ``endpos`` is set past the window by the width plus the look-ahead reach, so no assertion
inside a reported match sees the cut. A pattern the analysis cannot bound runs over the whole text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import regex

from sanitizers.recognizers.shape import Shape, ShapeError, Trigger, analyze_shape

_DIGIT_RUN = regex.compile(r"\d+")
_LETTER = regex.compile(r"[^\W\d_]")
_DIGIT = regex.compile(r"\d")
# Characters that start a regex attempt at almost every position of prose; a pattern whose first
# character can be one of these gains from windows, others are skipped to fast by the engine itself.
# ("b": the bitcoin pattern's "bc1", whose whole scans cost ~16 ns/char.)
_PROSE_SAMPLE = "abeinost ABEINST\néàü"
# The engine tries a pattern with an anchor (`Shape.anchor`) only near the anchor's occurrences,
# each about this many times cheaper than a window: with fewer per trigger, a whole scan wins.
_ANCHORS_PER_WINDOW = 8


class _Finder:
    """Finds one trigger's occurrences in a text, as sorted (start, end) spans. Interned: patterns
    with the same trigger share one finder, and so one cached list per text."""

    _interned: ClassVar[dict[tuple[Trigger, int, Any], _Finder]] = {}
    _lock = threading.Lock()

    def __init__(self, trigger: Trigger, flags: int, engine: Any) -> None:
        self.trigger = trigger
        # (k, membership of the preceding character or None) per digit-run atom
        self.digits = tuple(sorted(((atom.digits, _Membership(engine.compile(atom.precede, flags)) if atom.precede
                                     else None) for atom in trigger if atom.digits), key=lambda d: (d[0], d[1] is None)))
        self.fewest_digits = min((k for k, _ in self.digits), default=0)
        # Digit runs this long are occurrences whatever comes before them (0: no such atom).
        self.plain_digits = min((k for k, member in self.digits if member is None), default=0)
        self.chars = frozenset(c for atom in trigger for c in atom.chars)
        # (characters, membership of the one before or None, of the one after or None) per symbol atom
        self.symbols = tuple(
            (tuple(sorted(atom.chars)),
             _Membership(engine.compile(atom.precede, flags)) if atom.precede else None,
             _Membership(engine.compile(atom.follow, flags)) if atom.follow else None)
            for atom in sorted(trigger, key=repr) if atom.chars
        )

    @classmethod
    def get(cls, trigger: Trigger, flags: int, engine: Any) -> _Finder:
        key = (trigger, flags & (re.IGNORECASE | re.ASCII | re.UNICODE), engine)
        with cls._lock:
            finder = cls._interned.get(key)
            if finder is None:
                finder = cls._interned[key] = cls(trigger, key[1], engine)
        return finder

    def find(self, occurrences: Occurrences) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        if self.digits and occurrences.longest_digit_run() >= self.fewest_digits:
            runs = occurrences.digit_runs()
            if len(self.digits) == 1:
                k, member = self.digits[0]
                if member is None:
                    found = [(s, e) for s, e, before in runs if e - s >= k]
                else:
                    found = [(s, e) for s, e, before in runs if e - s >= k and member[before]]
            else:
                for start, end, before in runs:
                    if any(end - start >= k and (member is None or member[before]) for k, member in self.digits):
                        found.append((start, end))
        if self.symbols:
            ordered = len(found)  # the digit runs' spans are in order
            for chars, before, after in self.symbols:
                for char in chars:  # positions are listed once per text and character (one str.find when absent)
                    found.extend((p, p + 1) for p, b, a in occurrences.positions(char)
                                 if (before is None or before[b]) and (after is None or after[a]))
            if len(found) > ordered and (self.digits or len(self.symbols) > 1 or len(self.chars) > 1):
                found = sorted(set(found))
        return found


class _Membership(dict[str, bool]):
    """Whether a character is in a class, memoised per character (single dict operations: safe
    across threads). The empty string — no character before the text's start — is in no class."""

    def __init__(self, pattern: Any) -> None:
        super().__init__()
        self.pattern = pattern
        self[""] = False

    def __missing__(self, char: str) -> bool:
        found = self[char] = self.pattern.fullmatch(char) is not None
        return found


class Occurrences:
    """One text's trigger occurrences and alphabet runs, computed on first use (one per analyze call)."""

    __slots__ = ("_counts", "_digit_runs", "_found", "_longest", "_positions", "_present", "_reversed", "_runs", "_total",
                 "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._digit_runs: list[tuple[int, int, str]] | None = None
        self._longest = 0
        self._total = 0
        self._counts: dict[str, int] = {}
        self._positions: dict[str, list[tuple[int, str, str]]] = {}
        self._found: dict[Any, list[tuple[int, int]]] = {}
        self._present: set[Any] = set()
        self._reversed: str | None = None
        self._runs: dict[tuple[int, int], tuple[int, int]] = {}

    def digit_runs(self) -> list[tuple[int, int, str]]:
        """Maximal runs of digits: (start, end, the character before, or "")."""
        if self._digit_runs is None:
            text = self.text
            self._digit_runs = [(m.start(), m.end(), text[m.start() - 1] if m.start() else "")
                                for m in _DIGIT_RUN.finditer(text)]
            self._longest = max((e - s for s, e, _ in self._digit_runs), default=0)
            self._total = sum(e - s for s, e, _ in self._digit_runs)
        return self._digit_runs

    def digit_total(self) -> int:
        """How many digits the text holds."""
        self.digit_runs()
        return self._total

    def longest_digit_run(self) -> int:
        self.digit_runs()
        return self._longest

    def positions(self, char: str) -> list[tuple[int, str, str]]:
        """Where `char` occurs: (position, the character before, the one after; "" at the edges)."""
        found = self._positions.get(char)
        if found is None:
            text, found = self.text, []
            position = text.find(char)
            while position >= 0:
                found.append((position, text[position - 1] if position else "", text[position + 1 : position + 2]))
                position = text.find(char, position + 1)
            self._positions[char] = found
        return found

    def count(self, char: str) -> int:
        """How often `char` occurs."""
        found = self._counts.get(char)
        if found is None:
            found = self._counts[char] = self.text.count(char)
        return found

    def found_trigger(self, finder: _Finder) -> None:
        """Note that the trigger occurs (the caller found one), so `has` answers without looking."""
        self._present.add(finder)

    def has(self, finder: _Finder) -> bool:
        """Whether the trigger occurs at all (often known without listing its occurrences)."""
        if finder in self._present:
            return True
        found = self._found.get(finder)
        if found is not None:
            return bool(found)
        if finder.plain_digits and self.longest_digit_run() >= finder.plain_digits:
            return True
        return bool(self.of(finder))

    def of(self, finder: _Finder) -> list[tuple[int, int]]:
        found = self._found.get(finder)  # identity hash: finders are interned
        if found is None:
            found = self._found[finder] = finder.find(self)
        return found

    def run(self, alphabet_id: int, alphabet: Any, start: int) -> tuple[int, int]:
        """The maximal run of alphabet characters through `start`."""
        key = (alphabet_id, start)
        span = self._runs.get(key)
        if span is None:
            if self._reversed is None:
                self._reversed = self.text[::-1]
            n = len(self.text)
            left = alphabet.match(self._reversed, n - start).end() - (n - start)
            span = self._runs[key] = (start - left, alphabet.match(self.text, start).end())
        return span


class WindowedPattern:
    """A compiled pattern plus its shape; `finditer` yields the matches a whole-text scan yields.
    Read-only after construction; `get` shares one per (source, flags, engine)."""

    _cache: ClassVar[dict[tuple[str, int, Any], WindowedPattern]] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def get(cls, source: str, flags: int, engine: Any = regex) -> WindowedPattern:
        key = (source, flags, engine)
        with cls._cache_lock:
            found = cls._cache.get(key)
        if found is None:
            found = cls(source, flags, engine)  # compiled outside the lock; a race only wastes work
            with cls._cache_lock:
                found = cls._cache.setdefault(key, found)
        return found

    def __init__(self, source: str, flags: int, engine: Any = regex) -> None:
        self.source = source
        self.compiled = engine.compile(source, flags)
        try:
            self.shape: Shape | None = analyze_shape(source, flags)
        except (ShapeError, RecursionError):
            self.shape = None
        shape = self.shape
        class_flags = flags & (re.IGNORECASE | re.ASCII | re.UNICODE)
        self.finder: _Finder | None = None
        self.alphabet: Any = None
        self.in_alphabet: _Membership | None = None
        self.margin = 0
        # Classes every match holds beside its trigger: a window without one cannot hold a match.
        self.checks: tuple[Any, ...] = ()
        if shape is not None and shape.trigger and shape.lookahead is not None:
            # Even a whole-text scan is skipped when the text holds no trigger at all.
            self.finder = _Finder.get(shape.trigger, flags, engine)
        self.can_window = shape is not None and shape.windowed and self.finder is not None
        if self.can_window and shape is not None and shape.trigger:
            if shape.alphabet is not None:
                # Same engine and case rules as the pattern, so a run holds exactly what it can consume.
                self.alphabet = engine.compile(shape.alphabet, class_flags)
                self.in_alphabet = _Membership(engine.compile(shape.alphabet.removesuffix("*"), class_flags))
            self.margin = (shape.max_width or 0) + (shape.lookahead or 0) + 1
            if shape.needs_letter:
                self.checks += (_LETTER,)
            if shape.needs_digit and not all(atom.digits for atom in shape.trigger):
                self.checks += (_DIGIT,)
        # Windows cost Python bookkeeping (a few µs each); a whole-text scan costs per character,
        # little when the engine can skip to the pattern's first character, more when that is a
        # letter. Each call picks the cheaper way: windows while there are fewer triggers than
        # text length / `chars_per_window`. Both find exactly the same matches.
        # A text with fewer digits than every match holds is not scanned at all.
        self.digit_count = shape.digit_count if shape is not None else 0
        self.anchor = shape.anchor if shape is not None else None
        self.anchors_per_window = _ANCHORS_PER_WINDOW
        skips = shape is not None and self._engine_skips(shape, engine, class_flags)
        self.chars_per_window = 150 if skips else 12

    @staticmethod
    def _engine_skips(shape: Shape, engine: Any, flags: int) -> bool:
        """Whether the pattern cannot start on a common letter or a space: then the engine's own
        first-character scan skips most of the text."""
        if shape.first is None:
            return False
        return engine.search(shape.first, _PROSE_SAMPLE, flags) is None

    def windows(self, occurrences: Occurrences) -> list[tuple[int, int]]:
        """Disjoint, sorted [start, end) windows that hold every match."""
        shape, finder = self.shape, self.finder
        assert shape is not None and finder is not None
        n = len(occurrences.text)
        width = shape.max_width
        reach = (width - 1) if width is not None else n
        alphabet, alphabet_id, in_alphabet = self.alphabet, id(self.alphabet), self.in_alphabet
        text, min_width = occurrences.text, shape.min_width
        found: list[tuple[int, int]] = []
        pending = occurrences.of(finder)[::-1]
        while pending:
            start, end = pending.pop()
            if (in_alphabet is not None and end - start < min_width and not in_alphabet[text[start - 1] if start else ""]
                    and not in_alphabet[text[end : end + 1]]):
                continue  # no alphabet character on either side: the run is too short (no regex call needed)
            low, high = max(0, start - reach), min(n, end + reach)
            if alphabet is not None:
                run_start, run_end = occurrences.run(alphabet_id, alphabet, start)
                if run_end < end:  # a digit outside the alphabet cuts the trigger: look at the rest too
                    pending.append((run_end + 1, end))
                low, high = max(low, run_start), min(high, run_end)
            if high - low < min_width or any(check.search(text, low, high) is None for check in self.checks):
                continue
            if found and low <= found[-1][1]:
                found[-1] = (found[-1][0], max(found[-1][1], high))
            else:
                found.append((low, high))
        return found

    def finditer(self, text: str, occurrences: Occurrences | None = None) -> Iterator[Any]:
        """The pattern's matches in `text`, in order, exactly as ``compiled.finditer(text)``."""
        return iter(self.matches(text, occurrences if occurrences is not None else Occurrences(text)))

    def matches(self, text: str, occurrences: Occurrences) -> list[Any]:
        """`finditer`'s matches as a list (`occurrences` must be `text`'s)."""
        if self.digit_count and occurrences.digit_total() < self.digit_count:
            return []
        anchors = 0
        if self.anchor is not None:
            anchors = occurrences.count(self.anchor)
            if not anchors:  # every match holds it
                return []
        finder = self.finder
        if finder is not None:
            if not self.can_window or len(text) <= self.chars_per_window:
                # A whole-text scan either way: only whether the trigger occurs matters.
                return list(self.compiled.finditer(text)) if occurrences.has(finder) else []
            triggers = occurrences.of(finder)
            if not triggers:
                return []
            if (len(triggers) * self.chars_per_window > len(text)
                    or self.anchor is not None and anchors <= len(triggers) * self.anchors_per_window):
                return list(self.compiled.finditer(text))
        if not self.can_window:
            return list(self.compiled.finditer(text))
        n = len(text)
        finditer = self.compiled.finditer
        found = []
        for low, high in self.windows(occurrences):
            for match in finditer(text, low, min(n, high + self.margin)):
                if match.start() >= high:
                    break
                found.append(match)
        return found
