"""Name and group gazetteers: PERSON from known first/last names and cue phrases, NRP from a word list.

A statistical NER misses names it has not seen in context ("hey its jenny from accounts") and names
in short chat turns. These recognizers add evidence the model lacks:

- cue phrases — "my name is X", "Dear X", "Hi X", "Regards,\\nX", "Mr. X" — where X is a run of
  capitalized words (or known names in lower case after an explicit "my name is");
- first names from every Faker locale followed by a capitalized word ("Faina D. Yefremova");
- a known first name alone, when it is not also a common English word ("Siiri", but not "Will");
- nationalities, religions and political groups (NRP), whole words, any case.

Spans come back as `NerSpan`s like a model's, so the detector merges them the same way.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import regex
from faker.config import AVAILABLE_LOCALES

from sanitizers.ner import NerSpan

DATA_DIR = Path(__file__).parent / "data"

# Scores: a cue phrase is strong evidence; a dictionary hit alone is weaker and loses to a model's
# disagreeing label in overlap resolution.
CUE_SCORE = 0.85
FULL_NAME_SCORE = 0.75
FIRST_NAME_SCORE = 0.6
NRP_SCORE = 0.6

# A name word: a letter, then letters, apostrophes or inner hyphens ("O'Brien", "Bailey-Ross").
_WORD = r"[^\W\d_](?:[^\W\d_]|['’][^\W\d_]|-[^\W\d_])*"
_WORDS = regex.compile(_WORD)

# Phrases after which the next words name the writer or the addressee. Group 1 ends at the name.
_STRONG_CUES = regex.compile(
    r"\b(?:my\s+name\s+is|my\s+name['’]s|name\s*:|call\s+me|named|called|signed)\s+", regex.IGNORECASE
)
_WEAK_CUES = regex.compile(
    r"(?:\b(?:i\s+am|i['’]m|this\s+is|dear|hi|hello|hey|cc|attn|attention)[\s,:]+"
    r"|\b(?:thanks|thank\s+you|regards|sincerely|cheers|best|yours(?:\s+truly)?)\s*[,\n]\s*"
    r"|\b(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam|mme|mlle|herr|frau|sr|sra|srta|don|doña)\.?\s+)",
    regex.IGNORECASE,
)
# Words a cue may precede that are not names ("Dear Sir", "Hi team", "I am Happy").
_NOT_NAMES = frozenset(
    "sir madam madame team all everyone there guys folks friends sirs colleagues customer customers client "
    "hiring manager recruiter doctor professor mr mrs ms dr prof the a an my our your his her their this that "
    "i me you we they he she it here now today tomorrow again back sorry happy glad pleased writing "
    "looking interested currently going trying i i'm i've i'll i'd im "
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_MAX_NAME_WORDS = 4


def _faker_names(attributes: tuple[str, ...]) -> frozenset[str]:
    names: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except (ImportError, AttributeError):
            continue
        for attribute in attributes:
            values = getattr(provider, attribute, ())
            for value in values if isinstance(values, (dict, list, tuple, set, frozenset)) else ():
                for part in str(value).split():
                    if len(part) > 1:
                        names.add(part.lower())
    return frozenset(names)


@cache
def first_names() -> frozenset[str]:
    return _faker_names(("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"))


@cache
def last_names() -> frozenset[str]:
    return _faker_names(("last_names",))


@cache
def common_words() -> frozenset[str]:
    return frozenset((DATA_DIR / "common_words.txt").read_text(encoding="utf-8").split())


@cache
def nrp_words() -> frozenset[str]:
    lines = (DATA_DIR / "nrp.txt").read_text(encoding="utf-8").split("\n")
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


@cache
def _nrp_phrases() -> dict[str, tuple[tuple[str, ...], ...]]:
    """First word → the NRP phrases starting with it, longest first ("social" → ("social", "democrats"), ...)."""
    phrases: dict[str, list[tuple[str, ...]]] = {}
    for entry in nrp_words():
        words = tuple(w.lower() for w in _WORDS.findall(entry))
        phrases.setdefault(words[0], []).append(words)
    return {first: tuple(sorted(group, key=len, reverse=True)) for first, group in phrases.items()}


_POSSESSIVE = regex.compile(r"['’]s\b")


def _strip_possessive(start: int, end: int, word: str) -> tuple[int, int, str]:
    """"Yefremova's" is the name "Yefremova"; the run of name words ends there."""
    if len(word) > 3 and word[-2] in "'’" and word[-1] == "s":
        return start, end - 2, word[:-2]
    return start, end, word


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """Part of an email address, URL, handle or file name ("JOHN@EXAMPLE.COM", "john.doe", "@jenny"):
    pattern recognizers own those."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before in "@._/\\#" or after in "@_/\\" or (after == "." and text[end + 1 : end + 2].isalnum())


def _capitalized(word: str) -> bool:
    return word[0].isupper() and not (len(word) > 1 and word.isupper() and len(word) <= 3)


class NameGazetteer:
    """Finds PERSON and NRP spans from word lists and cue phrases. Read-only after construction."""

    name = "NameGazetteer"

    def __init__(self, *, nrp: bool = True) -> None:
        self.first = first_names()
        self.last = last_names()
        self.common = common_words()
        self.nrp = _nrp_phrases() if nrp else {}
        self.nrp_words = nrp_words()

    def predict(self, text: str) -> list[NerSpan]:
        words = [
            _strip_possessive(m.start(), m.end(), m.group())
            for m in _WORDS.finditer(text)
            if not _inside_identifier(text, m.start(), m.end())
        ]
        return self._names(text, words) + self._groups(words)

    def _groups(self, words: list[tuple[int, int, str]]) -> list[NerSpan]:
        spans: list[NerSpan] = []
        for index, (start, _, word) in enumerate(words):
            if spans and start < spans[-1].end:
                continue
            lower = word.lower()
            if lower in self.common and not word[0].isupper():
                continue  # "a conservative estimate", "liberal use": only the capitalized form names a group
            for phrase in self.nrp.get(lower, ()):
                following = words[index : index + len(phrase)]
                if len(following) == len(phrase) and all(w.lower() == p for (_, _, w), p in zip(following, phrase)):
                    spans.append(NerSpan("NRP", start, following[-1][1], NRP_SCORE))
                    break
        return spans

    def _names(self, text: str, words: list[tuple[int, int, str]]) -> list[NerSpan]:
        # Cue phrases are found in one pass; a word starting where a cue ends follows that cue.
        strong_ends = {m.end() for m in _STRONG_CUES.finditer(text)}
        weak_ends = {m.end() for m in _WEAK_CUES.finditer(text)}
        spans: list[NerSpan] = []
        index = 0
        while index < len(words):
            start, end, word = words[index]
            lower = word.lower()
            strong = start in strong_ends
            weak = not strong and start in weak_ends
            run = 0 if lower in _NOT_NAMES else self._name_run(text, words, index, allow_lower=strong)
            if run:
                last_index = index + run - 1
                run_end = words[last_index][1]
                known_first = lower in self.first and lower not in self.nrp_words
                if (strong or weak) and lower not in _NOT_NAMES and (strong or _capitalized(word)):
                    if strong or known_first or run > 1 or lower not in self.common:
                        spans.append(NerSpan("PERSON", start, run_end, CUE_SCORE))
                        index = last_index + 1
                        continue
                with_initial = run > 2 and any(len(w) == 1 for _, _, w in words[index + 1 : last_index])
                if run > 1 and _capitalized(word) and (with_initial or self._full_name(lower, words[index + 1][2])):
                    spans.append(NerSpan("PERSON", start, run_end, FULL_NAME_SCORE))
                    index = last_index + 1
                    continue
                if known_first and lower not in self.common and _capitalized(word):
                    spans.append(NerSpan("PERSON", start, end, FIRST_NAME_SCORE))
                elif known_first and lower not in self.common and index + 1 < len(words):
                    # "patricia desrosiers": two known names in lower case, neither a common word.
                    nxt_start, nxt_end, nxt = words[index + 1]
                    if nxt.lower() in self.last and nxt.lower() not in self.common and text[end:nxt_start].isspace():
                        spans.append(NerSpan("PERSON", start, nxt_end, FIRST_NAME_SCORE))
                        index += 2
                        continue
            index += 1
        return spans

    def _name_run(self, text: str, words: list[tuple[int, int, str]], index: int, *, allow_lower: bool) -> int:
        """How many words from `index` form a name candidate: capitalized words (or, after a strong
        cue, known names in any case) separated by single spaces, with initials ("D.") inside."""
        count = 0
        while index + count < len(words) and count < _MAX_NAME_WORDS:
            start, end, word = words[index + count]
            if count:
                previous = words[index + count - 1][2]
                gap = text[words[index + count - 1][1] : start]
                if not (gap == " " or (len(previous) == 1 and gap == ". ")) or _POSSESSIVE.match(text, start - 2):
                    break
            lower = word.lower()
            if len(word) == 1:
                if not (count and word.isupper() and text[end : end + 1] == "."):
                    break
            elif _capitalized(word):
                if count and lower in self.common and lower not in self.last:
                    break
            elif not (allow_lower and (lower in self.first or lower in self.last) and lower not in self.common):
                break
            count += 1
        while count and len(words[index + count - 1][2]) == 1:  # a run never ends on an initial
            count -= 1
        return count

    def _full_name(self, first: str, second: str) -> bool:
        """A known first name then a surname-like word: "Krisztián Szöllösy", "Will Smith", not "Red Cross"."""
        if first not in self.first or first in self.nrp_words:
            return False
        second = second.lower()
        if first in self.common:
            return second in self.last and second not in self.common
        return second in self.last or second not in self.common
