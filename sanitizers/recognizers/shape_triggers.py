"""Triggers: what `shape.analyze_shape` promises every match of a regex holds, and how they combine.

An `Atom` is a run of at least *k* digits or one of a few punctuation characters, maybe with the
class of the character right before (or after) it; a `Trigger` is a set of atoms, one of which
occurs in every match. Here: their rarity cost (the cheapest trigger wins), the trigger of
alternatives (`trigger_union`), and the regex source of character classes (`class_source`), which
the parse-tree walk in `shape` uses as well.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ANY_CHAR = "(?s:.)"  # a character-class set that could be anything
# How often a trigger shows up in ordinary text (lower is rarer): short digit runs are everywhere
# (years, amounts), long ones and '@' are rare; a neighbour condition rules out most occurrences.
_DIGIT_COST = {1: 10, 2: 8, 3: 6, 4: 5, 5: 3, 6: 3, 7: 3}
_CHAR_COST = {"@": 1, ":": 2, "#": 2, "/": 3, "_": 3, "+": 3, "=": 3, "-": 5, ".": 5, ",": 7}
_DIGIT_FREE_CATEGORIES = {r"\D", r"\s", r"\W"}


@dataclass(frozen=True)
class Atom:
    """A run of ≥ `digits` digits, or one of `chars`, right after a `precede` character and (for
    chars) right before a `follow` character (classes as regex source; None: anything or nothing)."""

    digits: int = 0
    precede: str | None = None
    chars: frozenset[str] = frozenset()
    follow: str | None = None
    # During the analysis only: the symbol may be the last character of the subpattern read so far;
    # these class items can follow it inside it, and what follows the subpattern is still to come.
    open_follow: frozenset[str] | None = None

    def cost(self) -> int:
        if self.digits:
            cost = _DIGIT_COST.get(self.digits, 2)
            return (cost + 1) // 3 if self.precede else cost
        cost = sum(_CHAR_COST.get(char, 3) for char in self.chars)
        for neighbour in (self.precede, self.follow):
            cost = (cost + 1) // 2 if neighbour else cost
        return cost

    def covers(self, other: Atom) -> bool:
        """Every occurrence of `other` is one of this atom's."""
        if self.digits:
            return bool(other.digits) and other.digits >= self.digits and self.precede in (None, other.precede)
        # An open follow may still narrow: only the same open follow covers it.
        follow_covers = (self.follow is None and self.open_follow is None
                         or (self.follow, self.open_follow) == (other.follow, other.open_follow))
        return (not other.digits and other.chars <= self.chars and follow_covers
                and self.precede in (None, other.precede))

    def followed_by(self, items: set[str], settled: bool) -> Atom:
        """An open atom with `items` able to follow it too; `settled`: nothing else can."""
        if self.open_follow is None:
            return self
        found = self.open_follow | items
        if settled:
            return replace(self, follow=class_source(set(found)) if found else None, open_follow=None)
        return replace(self, open_follow=found)


Trigger = frozenset  # of Atom: every match holds an occurrence of one of them


def _cost(trigger: Trigger) -> int:
    return sum(atom.cost() for atom in trigger)


def trigger_union(a: Trigger, b: Trigger) -> Trigger:
    """The trigger of two alternatives: their atoms, less those another one covers."""
    atoms = a | b
    return frozenset(x for x in atoms if not any(y != x and y.covers(x) for y in atoms))


def trigger_followed_by(trigger: Trigger | None, items: set[str], settled: bool) -> Trigger | None:
    """`Atom.followed_by` for each atom of `trigger`."""
    if not trigger or all(atom.open_follow is None for atom in trigger):
        return trigger
    return frozenset(atom.followed_by(items, settled) for atom in trigger)


def cheapest_trigger(*triggers: Trigger | None) -> Trigger | None:
    """The rarest (lowest total `Atom.cost`) of the given triggers, if any."""
    found = [t for t in triggers if t]
    return min(found, key=_cost) if found else None


def char_source(code: int) -> str:
    """A code point as a class item, escaped so that no character is special."""
    return f"\\U{code:08x}"


def class_source(items: set[str]) -> str | None:
    """One regex for a set of class items ("\\U00000041", "a-z", "\\d", "[^…]"); None for any."""
    if not items or ANY_CHAR in items:
        return None
    plain = sorted(s for s in items if not s.startswith("[^"))
    parts = (["[" + "".join(plain) + "]"] if plain else []) + sorted(s for s in items if s.startswith("[^"))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def digit_free(items: set[str]) -> bool:
    """No item can match a decimal digit."""
    for item in items:
        if item in _DIGIT_FREE_CATEGORIES:
            continue
        if item.startswith("[^") or item.startswith("\\") and len(item) == 2 or item == ANY_CHAR:
            return False  # negated classes, \d \w \S: may hold digits
        bounds = [int(part.removeprefix("\\U"), 16) for part in item.split("-")]
        low, high = bounds[0], bounds[-1]
        if high - low > 0x3000 or any(chr(c).isdecimal() for c in range(low, high + 1)):
            return False
    return True
