"""Deny lists of any size in one pass: an Aho-Corasick automaton over every custom recognizer's words.

Presidio turns a deny list into one regex alternation ``(?:^|(?<=\\W))(w1|w2|…)(?:(?=\\W)|$)``,
case-insensitive, per recognizer: fine for ten words, slow to build and to run for 50,000. Here all
lists share one automaton over the lower-cased text; a hit counts when the characters on both sides
are not word characters (Presidio's boundaries). Unlike the regex alternation, which reports the
first alternative that matches at a position, every listed word found is reported — overlaps are
resolved later like any other matches (a longer hit contains a shorter one of the same entity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ahocorasick
import regex

_WORD = regex.compile(r"\w")  # the `regex` module's \w, as in Presidio's (?<=\W) / (?=\W)
# Characters whose lower case is not what case-insensitive regex matching folds them to.
_FOLDS = str.maketrans({"ς": "σ", "ſ": "s", "ϐ": "β", "ϑ": "θ", "ϕ": "φ", "ϖ": "π", "ϰ": "κ", "ϱ": "ρ", "ϵ": "ε",
                        "ẛ": "ṡ"})


def fold(text: str) -> str:
    """Lower case with one character per character (offsets stay valid)."""
    folded = text.lower()
    if len(folded) != len(text):  # "İ" lower-cases to two characters
        folded = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    return folded.translate(_FOLDS)


class DenyLists:
    """Every deny-list word of several recognizers, matched together. Thread-safe after construction."""

    def __init__(self, lists: Sequence[Iterable[str]]) -> None:
        """`lists[i]` holds recognizer i's words; matches report that index."""
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        entries: dict[str, list[int]] = {}
        for index, words in enumerate(lists):
            for word in words:
                key = fold(word)
                if key.strip():
                    owners = entries.setdefault(key, [])
                    if index not in owners:
                        owners.append(index)
        for key, owners in entries.items():
            self._automaton.add_word(key, (len(key), tuple(owners)))
        self.size = len(entries)
        if entries:
            self._automaton.make_automaton()

    def find(self, text: str) -> list[tuple[int, int, int]]:
        """(recognizer index, start, end) of every whole-word hit."""
        if not self.size:
            return []
        found: list[tuple[int, int, int]] = []
        n = len(text)
        for last, (length, owners) in self._automaton.iter(fold(text)):
            start, end = last - length + 1, last + 1
            if start > 0 and _WORD.match(text, start - 1):
                continue
            if end < n and _WORD.match(text, end):
                continue
            found.extend((owner, start, end) for owner in owners)
        return found
