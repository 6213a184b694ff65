"""What a regex's matches must look like, read from its parse tree once, at build time.

`analyze_shape(source, flags)` returns a `Shape`:

* **trigger** — a set of `Atom`s, one of which occurs in every match: a run of at least *k* digits
  (maybe right after a character of some class: the "89" of "DE89"), or one of a few punctuation
  characters (maybe right before a character of some class: the "." of ".com");
* **min/max width** (``None``: unbounded) and **lookahead**, how far past a match an assertion peeks;
* **alphabet** — regex source of a class holding every character a match can consume (look-around
  contents excluded); ``None`` when that is any character;
* **first** — the class of a match's first character; **needs_letter** / **needs_digit**, and
  **digit_count**, the fewest digits a match holds;
* **anchor** — an ASCII non-letter every match holds within a bounded distance of its start: `regex`
  then looks for that character instead of trying every position, so whole scans are cheap.

The analysis uses the stdlib parser (`re._parser`); the patterns here are written in the common
subset of `re` and `regex`. Syntax outside the model (or that the stdlib reads differently, such as
POSIX classes) raises `ShapeError`; such a pattern simply runs over the whole text.

This module walks the parse tree (`_Analyzer`) and holds the public entry points; the trigger atoms,
their costs and how triggers combine, and class-source helpers, are in `shape_triggers`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from sanitizers.recognizers.shape_triggers import (
    ANY_CHAR,
    Atom,
    Trigger,
    char_source,
    cheapest_trigger,
    class_source,
    digit_free,
    trigger_followed_by,
    trigger_union,
)

try:  # Python ≥ 3.11 keeps the parser private; older versions expose it as sre_parse.
    from re import _constants as _C
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as _C  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_DIGIT_CATEGORIES = {_C.CATEGORY_DIGIT, getattr(_C, "CATEGORY_UNI_DIGIT", _C.CATEGORY_DIGIT)}
_CATEGORY_SOURCE = {
    _C.CATEGORY_DIGIT: r"\d",
    _C.CATEGORY_NOT_DIGIT: r"\D",
    _C.CATEGORY_SPACE: r"\s",
    _C.CATEGORY_NOT_SPACE: r"\S",
    _C.CATEGORY_WORD: r"\w",
    _C.CATEGORY_NOT_WORD: r"\W",
}
_LOOKAHEAD_ATS = {_C.AT_BOUNDARY, _C.AT_NON_BOUNDARY, _C.AT_END, _C.AT_END_LINE, _C.AT_END_STRING}
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
_MAXREPEAT = int(_C.MAXREPEAT)
_ANCHOR_REACH = 16  # farthest offset of an anchor from a match's start (regex's own search is bounded too)


class ShapeError(ValueError):
    """The pattern uses syntax the analysis does not model; it runs over the whole text instead."""


def _add(width: int | None, more: int | None) -> int | None:
    return None if width is None or more is None else width + more


@dataclass
class _Info:
    """What one parsed (sub)pattern can consume."""

    min_width: int = 0
    max_width: int | None = 0
    trigger: Trigger | None = None
    digits_only: bool = True  # consumes digit characters only
    alphabet: set[str] = field(default_factory=set)  # class items (negated classes whole)
    any_char: bool = False
    lookahead: int | None = 0
    first: set[str] = field(default_factory=set)  # classes of its first character
    last: set[str] = field(default_factory=set)  # classes of its last character
    needs_letter: bool = False
    needs_digit: bool = False
    digit_count: int = 0  # digits every match holds, at least
    anchor: tuple[str, int] | None = None  # (character, its farthest offset from the start)


def _edge(items: list[_Info], attribute: str) -> tuple[set[str], bool]:
    """First (or last) character classes of a sequence, and whether it may consume nothing."""
    found: set[str] = set()
    for item in items:
        found |= getattr(item, attribute)
        if item.min_width:
            return found, False
    return found, True


class _Analyzer:
    def __init__(self, flags: int) -> None:
        self.dotall = bool(flags & re.DOTALL)
        self.groups: dict[int, _Info] = {}

    def sequence(self, parsed: Any) -> _Info:
        infos = [self.item(op, av) for op, av in parsed]
        info = _Info()
        candidates: list[Trigger | None] = []
        run, run_from = 0, 0  # consecutive mandatory digits, and the item they start at
        for index, item in enumerate(infos):
            if item.lookahead is None or info.lookahead is None:
                info.lookahead = None
            else:  # an assertion looks from where it stands: what follows it in the pattern counts too
                info.lookahead = max(info.lookahead - item.min_width, item.lookahead, 0)
            info.min_width += item.min_width
            info.max_width = _add(info.max_width, item.max_width)
            info.digits_only &= item.digits_only
            info.alphabet |= item.alphabet
            info.any_char |= item.any_char
            info.needs_letter |= item.needs_letter
            info.needs_digit |= item.needs_digit
            info.digit_count += item.digit_count
            trigger = item.trigger
            if trigger and item.min_width == item.max_width == 1 and all(a.chars for a in trigger):
                # One symbol (a literal, a class, a group around one): note the character before it.
                trigger = self._precede(trigger, infos, index)
            follow, nullable = _edge(infos[index + 1 :], "first")
            candidates.append(trigger_followed_by(trigger, follow, not nullable))
            if item.digits_only:
                if not run and item.min_width:
                    run_from = index
                run += item.min_width  # optional digits neither add to nor break the run
            elif item.max_width != 0:
                candidates.append(self._run(infos, run, run_from))
                run = 0
        candidates.append(self._run(infos, run, run_from))
        info.trigger = cheapest_trigger(*candidates)
        info.anchor = self._anchor(infos)
        info.first, _ = _edge(infos, "first")
        info.last, _ = _edge(list(reversed(infos)), "last")
        return info

    @staticmethod
    def _anchor(infos: list[_Info]) -> tuple[str, int] | None:
        """The first anchor of a sequence, at a bounded offset from its start."""
        offset: int | None = 0
        for item in infos:
            if offset is None or offset > _ANCHOR_REACH:
                return None
            if item.anchor is not None and offset + item.anchor[1] <= _ANCHOR_REACH:
                return item.anchor[0], offset + item.anchor[1]
            offset = _add(offset, item.max_width)
        return None

    @staticmethod
    def _precede(trigger: Trigger, infos: list[_Info], index: int) -> Trigger:
        precede, no_precede = _edge(list(reversed(infos[:index])), "last")
        precede_source = None if no_precede else class_source(precede)
        return frozenset(replace(a, precede=precede_source) if a.precede is None else a for a in trigger)

    @staticmethod
    def _run(infos: list[_Info], run: int, run_from: int) -> Trigger | None:
        """A digit-run trigger, with the class of the character right before it when known."""
        if not run:
            return None
        before, nullable = _edge(list(reversed(infos[:run_from])), "last")
        precede = class_source(before) if not nullable and digit_free(before) else None
        return frozenset({Atom(run, precede)})

    def item(self, op: Any, av: Any) -> _Info:
        if op is _C.LITERAL:
            char, source = chr(av), char_source(av)
            trigger = None
            if char.isdecimal():  # what \d matches
                trigger = frozenset({Atom(1)})
            elif not (char.isalnum() or char.isspace()):
                trigger = frozenset({Atom(0, None, frozenset(char), open_follow=frozenset())})
            return _Info(1, 1, trigger, char.isdecimal(), {source}, False, 0, {source}, {source},
                         char.isalpha(), char.isdecimal(), int(char.isdecimal()),
                         None if char.isalpha() or not char.isascii() else (char, 0))  # no case folding
        if op is _C.NOT_LITERAL:
            source = f"[^{char_source(av)}]"
            return _Info(1, 1, None, False, {source}, first={source}, last={source})
        if op is _C.ANY:
            source = ANY_CHAR if self.dotall else "[^\\n]"
            return _Info(1, 1, None, False, {source}, self.dotall, first={source}, last={source})
        if op is _C.IN:
            return self.char_class(av)
        if op is _C.AT:
            return _Info(0, 0, lookahead=1 if av in _LOOKAHEAD_ATS else 0)
        if op in (_C.ASSERT, _C.ASSERT_NOT):
            direction, sub = av
            if direction < 0:  # look-behinds see the text before a window: nothing to account for
                return _Info(0, 0)
            inner = self.sequence(sub)
            return _Info(0, 0, lookahead=_add(inner.max_width, inner.lookahead))
        if op is _C.SUBPATTERN:
            group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise ShapeError("scoped inline flags")
            info = self.sequence(sub)
            if group is not None:
                self.groups[group] = info
            return info
        if op is getattr(_C, "ATOMIC_GROUP", None):
            return self.sequence(av)
        if op is _C.BRANCH:
            return self.branch([self.sequence(branch) for branch in av[1]])
        if op is _C.GROUPREF_EXISTS:
            _, yes, no = av
            return self.branch([self.sequence(yes), self.sequence(no) if no else _Info()])
        if op is _C.GROUPREF:
            group = self.groups.get(av)
            if group is None:
                raise ShapeError("forward group reference")
            # The same text as the group: same alphabet, widths and edges; never a trigger of its own.
            return _Info(group.min_width, group.max_width, None, group.digits_only, set(), group.any_char,
                         group.lookahead, set(group.first), set(group.last), digit_count=group.digit_count)
        if op in _REPEATS:
            return self.repeat(*av)
        raise ShapeError(f"unsupported regex operation {op}")

    def repeat(self, low: int, high: int, sub: Any) -> _Info:
        inner = self.sequence(sub)
        trigger = None
        if low >= 1:
            run = frozenset({Atom(low * inner.min_width)}) if inner.digits_only and inner.min_width else None
            # A symbol ending one repetition may be followed by the next one's first character.
            repeated = trigger_followed_by(inner.trigger, inner.first, False) if high > 1 else inner.trigger
            trigger = cheapest_trigger(repeated, run)
        if inner.max_width == 0:
            max_width: int | None = 0
        elif high >= _MAXREPEAT or inner.max_width is None:
            max_width = None
        else:
            max_width = high * inner.max_width
        # Each repetition ends at or before the repeat's end: the last one's reach bounds them all.
        edges = (inner.first, inner.last) if high else (set(), set())
        return _Info(low * inner.min_width, max_width, trigger, inner.digits_only, inner.alphabet, inner.any_char,
                     inner.lookahead, *edges, low >= 1 and inner.needs_letter, low >= 1 and inner.needs_digit,
                     low * inner.digit_count)  # no anchor: `regex` does not look inside repeats

    @staticmethod
    def branch(branches: list[_Info]) -> _Info:
        info = _Info(min(b.min_width for b in branches), 0)
        info.needs_letter = all(b.needs_letter for b in branches)
        info.needs_digit = all(b.needs_digit for b in branches)
        info.digit_count = min(b.digit_count for b in branches)
        trigger: Trigger | None = branches[0].trigger
        for b in branches:
            info.max_width = None if info.max_width is None or b.max_width is None else max(info.max_width, b.max_width)
            info.digits_only &= b.digits_only
            info.alphabet |= b.alphabet
            info.any_char |= b.any_char
            info.first |= b.first
            info.last |= b.last
            info.lookahead = None if info.lookahead is None or b.lookahead is None else max(info.lookahead, b.lookahead)
            trigger = None if not trigger or not b.trigger else trigger_union(trigger, b.trigger)
        info.trigger = trigger
        anchors = {b.anchor[0] if b.anchor else None for b in branches}
        if len(anchors) == 1 and None not in anchors:  # the same character in every branch
            info.anchor = (anchors.pop(), max(b.anchor[1] for b in branches if b.anchor))
        return info

    @staticmethod
    def char_class(items: Any) -> _Info:
        negate = bool(items) and items[0][0] is _C.NEGATE
        sources: list[str] = []
        symbols: set[str] = set()
        digits_only = letters_only = only_symbols = not negate
        for op, av in items[1:] if negate else items:
            if op is _C.LITERAL:
                sources.append(char_source(av))
                digits_only &= chr(av).isdecimal()
                letters_only &= chr(av).isalpha()
                symbols.add(chr(av))
            elif op is _C.RANGE:
                low, high = av
                sources.append(f"{char_source(low)}-{char_source(high)}")
                digits_only &= "0" <= chr(low) and chr(high) <= "9"
                letters_only &= high - low < 512 and all(chr(c).isalpha() for c in range(low, high + 1))
                only_symbols = False
            elif op is _C.CATEGORY:
                if av not in _CATEGORY_SOURCE and av not in _DIGIT_CATEGORIES:
                    raise ShapeError(f"unsupported category {av}")
                sources.append(_CATEGORY_SOURCE.get(av, r"\d"))
                digits_only &= av in _DIGIT_CATEGORIES
                letters_only = only_symbols = False
            else:
                raise ShapeError(f"unsupported class item {op}")
        if negate:
            source = "[^" + "".join(sources) + "]"
            return _Info(1, 1, None, False, {source}, first={source}, last={source})
        trigger = None
        if digits_only:
            trigger = frozenset({Atom(1)})
        elif only_symbols and symbols and not any(c.isalnum() or c.isspace() for c in symbols):
            trigger = frozenset({Atom(0, None, frozenset(symbols), open_follow=frozenset())})
        edge = set(sources)
        return _Info(1, 1, trigger, digits_only, set(sources), False, 0, edge, set(edge),
                     letters_only and bool(sources), digits_only and bool(sources), int(digits_only and bool(sources)))


@dataclass(frozen=True)
class Shape:
    """What `analyze_shape` learnt about one pattern (see the module docstring)."""

    trigger: Trigger | None
    min_width: int
    max_width: int | None
    lookahead: int | None
    alphabet: str | None
    first: str | None
    needs_letter: bool = False
    needs_digit: bool = False
    digit_count: int = 0
    anchor: str | None = None

    @property
    def windowed(self) -> bool:
        """Whether the pattern can run on windows (else: the whole text)."""
        if not self.trigger or self.lookahead is None:
            return False
        return self.max_width is not None or self.alphabet is not None


def _analyze(source: str, flags: int) -> tuple[_Info, _Analyzer]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "possible nested set" etc.: the `regex` module reads these differently
        try:
            parsed = _sre_parse.parse(source, int(flags) & ~int(re.DEBUG))  # ints: enum flags slow the parser down
        except (re.error, FutureWarning, DeprecationWarning) as exc:
            raise ShapeError(str(exc)) from None
    analyzer = _Analyzer(parsed.state.flags)
    try:
        return analyzer.sequence(parsed), analyzer
    except RecursionError:
        raise ShapeError("too deeply nested") from None


def group_widths(source: str, flags: int = 0) -> dict[int, tuple[int, int | None]]:
    """Capturing group number → (min, max) width of what it matches."""
    _, analyzer = _analyze(source, flags)
    return {group: (info.min_width, info.max_width) for group, info in analyzer.groups.items()}


def analyze_shape(source: str, flags: int) -> Shape:
    """Raises ShapeError for syntax outside the model."""
    info, _ = _analyze(source, flags)
    # A symbol still open can end a match: any character may follow it.
    trigger = frozenset(replace(a, follow=None, open_follow=None) if a.open_follow is not None else a
                        for a in info.trigger) if info.trigger else info.trigger
    alphabet = None if info.any_char else class_source(info.alphabet)
    lookahead = None if info.lookahead is None else max(1, info.lookahead)
    first = class_source(info.first) if info.min_width else None
    return Shape(trigger, info.min_width, info.max_width, lookahead, None if alphabet is None else alphabet + "*",
                 first, info.needs_letter, info.needs_digit, info.digit_count, info.anchor[0] if info.anchor else None)
