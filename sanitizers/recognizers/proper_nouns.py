"""Words the English vocabulary does not know, in the shapes of names → `PROPER_NOUN` (opt-in:
`detection.proper_nouns`).

NER models miss rare names, products and small organizations ("Napco", "Waqas", "Cloudflare Workers");
what they have in common is a capital letter on a word no English dictionary lists. This recognizer
finds runs of capitalized words (Title, ALLCAPS, CamelCase; joined by spaces and the connectors of names:
of, the, and, &, de, van, von, der, da, di, du, la, le, al, bin) and keeps a run when at least one of its
words is outside the vocabulary (below). It is a high-recall, low-precision heuristic (score 0.5): jargon
and product words ("Kubernetes Setup") are taken for names, which costs some answer quality; enable it
where leaking a rare name costs more (see policies/minimal-disclosure.yaml).

A single word at the start of a sentence, line or list item is skipped (capitalized by position, not
by nature), and so are words of one or two letters on their own. More shapes are names as well:
camelCase and snake_case words with a part outside the vocabulary (`truHealth`, `erxesHQ`,
`initi_user`: product names and code identifiers); the authors of a citation ("Sakr et al.", reported
as PERSON with the "et al."); and lower-case words of five letters or more outside the vocabulary ("copart", "beachandbytes") when the sentence around them is
English (three words in four known) or mostly another script (a Latin name in Chinese text), and the
word is neither an inflection of a known word nor one edit away from one (a misspelling). Last, what
the text itself calls a name, in any case ("a company called tech stop", "its name is …"), and quoted
Title-Case phrases of two to five words ("Lost Bubble", “Near Crisis Project”).

The vocabulary is SCOWL's 115k lower-case English words (data/english_words.txt.gz), the gazetteer's
common words and NRP terms, and data/not_names.txt (months, weekdays, everyday acronyms). The NER
tokenizer's vocabulary is not used: it holds thousands of names ("mcdonald", "zaragoza").
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

from sanitizers.types import Detection

__all__ = ["ENTITY", "find_proper_nouns", "known_words"]

ENTITY = "PROPER_NOUN"
SCORE = 0.5
# SCOWL's lower-case English words (115k, inflections included; see data/english_words.LICENSE.txt).
_ENGLISH_WORDS = Path(__file__).resolve().parent / "data" / "english_words.txt.gz"
# Months, weekdays, contraction stems and everyday acronyms, which SCOWL's lower-case list lacks.
_NOT_NAMES = Path(__file__).resolve().parent / "data" / "not_names.txt"
_CONNECTORS = frozenset(["of", "the", "and", "&", "de", "van", "von", "der", "da", "di", "du", "la", "le", "al", "bin"])
_WORD = r"[A-Z][\w&'’-]*(?:\.[A-Za-z][\w&'’-]*)*"
_SPAN = re.compile(
    rf"(?<![\w@/\\.#$-]){_WORD}(?:[ \t]+(?:(?:{'|'.join(re.escape(c) for c in _CONNECTORS)})[ \t]+)?{_WORD})*(?![\w@])"
)
_POSITIONAL = re.compile(r"(?:^|[.!?:;\n]\s*|[\"“'‘(\[]\s*|\n\s*(?:[-*•]|\d+[.)])\s*)$")
_POSSESSIVE = re.compile(r"['’]s$")
_TITLE_BEFORE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|St|Sr|Jr|Rev|Hon|Gen|Capt|Lt|Sgt)\.\s*$")


@functools.cache
def known_words() -> frozenset[str]:
    """Lower-case English words: SCOWL's word list, the gazetteer's common words, nationalities, religions
    and parties (the NER's NRP, not names here), and `data/not_names.txt`."""
    from sanitizers.ner.gazetteer import common_words, nrp_words

    words = set(common_words())
    words.update(gzip.decompress(_ENGLISH_WORDS.read_bytes()).decode("ascii").split())
    words.update(nrp_words())
    for line in _NOT_NAMES.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.update(line.split())
    return frozenset(words)


def _unknown(word: str, known: frozenset[str]) -> bool:
    bare = _POSSESSIVE.sub("", word).strip(".-'’").lower()
    parts = [p for p in re.split(r"[-.'’&]", bare) if p]
    return len(bare) > 2 and any(p not in known and not p.isdigit() for p in parts)


# "Altinier et al." and "Smith and Jones et al.": the authors of a cited work, named as such.
_CITATION = re.compile(r"(?<![\w-])[A-Z][\w'’-]+(?:[ \t]+(?:and|&)[ \t]+[A-Z][\w'’-]+)?[ \t]+et[ \t]+al\.?")
# Product names and code identifiers: camelCase (`truHealth`, `xDoctor`), snake_case (`uhaul_username`), and
# PascalCase qualified by a dot (`databinding.ActivityMainBinding`; unqualified ones are capitalized spans).
_IDENTIFIER = re.compile(
    r"(?<![\w@/\\#$-])(?:[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*|[a-z][a-z0-9]*(?:_[a-z0-9]+)+"
    r"|(?<=\.)[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+)(?![\w@])"
)
_IDENTIFIER_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# "a company called tech stop", "my blog, its name is attakhsis": whatever the text says is a name is one,
# written in any case; it runs to punctuation or a word that continues the sentence.
_NAMED = re.compile(
    r"(?i)(?<![\w-])(?:called|named|name\s+is|known\s+as|trading\s+as|brand)\s+[\"“'‘]?"
    r"(?!(?:a|an|the|my|your|our|his|her|their|its|this|that|it|me|him|them|us|you|after|by|for|to|in|on|at|into"
    r"|upon|out|up|off|back|so|as|not)\b)"
    r"(?P<name>[\w&'’.-]+(?:[ \t]+(?!(?:that|which|who|and|or|is|are|was|in|at|for|with|to|from|located|based|on|by|of)\b)[\w&'’.-]+){0,3})"
    r"(?=[\"”'’]?(?:[\s,.;:!?)]|$))"
)
# A quoted Title-Case phrase names a thing (a game, a project, a product): "Sultan Bubble", “Near Crisis Project”.
_QUOTED_TITLE = re.compile(
    r"(?<=[\"“‘'])(?P<name>[A-Z][\w&'’-]*(?:[ \t]+(?:(?:of|the|and|&|de|la|for|in|on)[ \t]+)?[A-Z][\w&'’-]*){1,4})(?=[\"”’'])"
)
_OPENING_MARK = re.compile(r"[\"“'‘(\[]\s*$")
# Lower-case words outside the vocabulary, in English prose: names typed without capitals ("mcdonalds",
# "beachandbytes", "copart"). Not inside paths, handles, identifiers or calls.
_LOWER_WORD = re.compile(r"(?<![A-Za-z0-9_@/\\.#$&-])[a-z]{5,}(?![A-Za-z0-9_@/\\(=-])")
_SENTENCE = re.compile(r"[^.!?\n]+")
_ALPHA_WORD = re.compile(r"[A-Za-z]+")
_OTHER_SCRIPT_LETTER = re.compile(r"[^\W\d_\x00-\u024f]")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_SUFFIXES = ("ingly", "ings", "ing", "edly", "ed", "es", "s", "ly", "ers", "er", "est", "ments", "ment", "ness",
             "ations", "ation", "able", "ably", "ity", "ful", "less", "ize", "ise", "ized", "ised", "izing", "ising")


def _english_form(word: str, known: frozenset[str]) -> bool:
    """An inflection or derivation of a known word ("forwarding", "rephrased", "unlockable")."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if stem in known or stem + "e" in known or (stem[-1] == stem[-2:-1] and stem[:-1] in known):
                return True
            if stem.endswith("i") and stem[:-1] + "y" in known:  # studies, happily
                return True
    return word.startswith(("un", "re", "pre", "non", "over", "under", "mis")) and any(
        word[len(p):] in known for p in ("un", "re", "pre", "non", "over", "under", "mis") if word.startswith(p))


def _typo(word: str, known: frozenset[str]) -> bool:
    """One edit (delete, insert, replace, swap) away from a known word: a misspelling, not a name."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    for left, right in splits:
        if right and left + right[1:] in known:
            return True
        if len(right) > 1 and left + right[1] + right[0] + right[2:] in known:
            return True
        for letter in _ALPHABET:
            if left + letter + right in known or (right and left + letter + right[1:] in known):
                return True
    return False


@functools.lru_cache(maxsize=8192)
def _rare(word: str) -> bool:
    """Outside the vocabulary, and neither an inflection of a known word nor a misspelling of one. (Cached:
    a conversation repeats its words every turn.)"""
    known = known_words()
    if word in known or _english_form(word, known):
        return False
    # A misspelling is one edit from a word; at five letters nearly every string is, so names win.
    return len(word) <= 5 or not _typo(word, known)


def _rare_lowercase_words(text: str, known: frozenset[str]) -> list[Detection]:
    found = []
    for sentence in _SENTENCE.finditer(text):
        candidates = [m for m in _LOWER_WORD.finditer(sentence.group(0)) if _rare(m.group(0))]
        if not candidates:
            continue
        # English prose, or Latin words inside text of another script ("给koushik发邮件"); in a Latin-script
        # language other than English, or in code, every word looks rare.
        words = [w.lower() for w in _ALPHA_WORD.findall(sentence.group(0))]
        english = len(words) >= 4 and sum(w in known for w in words) >= 0.75 * len(words)
        if not english and len(_OTHER_SCRIPT_LETTER.findall(sentence.group(0))) <= sum(map(len, words)):
            continue
        for match in candidates:
            start = sentence.start() + match.start()
            found.append(Detection(ENTITY, start, match.end() + sentence.start(), SCORE, "ProperNounRecognizer"))
    return found


def find_proper_nouns(text: str) -> list[Detection]:
    known = known_words()
    found = [Detection("PERSON", m.start(), m.end(), 0.8, "ProperNounRecognizer") for m in _CITATION.finditer(text)]
    cited = [(d.start, d.end) for d in found]
    for match in _SPAN.finditer(text):
        if any(start <= match.start() < end for start, end in cited):
            continue
        words = [w for w in match.group(0).split() if w.lower() not in _CONNECTORS]
        if not any(_unknown(word, known) for word in words):
            continue
        if len(words) == 1:
            before = text[max(0, match.start() - 8):match.start()]
            # A quote or bracket opens a name as often as a sentence ("(Mitosculpt)", “Cumbia”): only a
            # sentence or list-item start makes the capital positional.
            positional = _POSITIONAL.search(before) and not _OPENING_MARK.search(before)
            if len(words[0]) <= 2 or (positional and not _TITLE_BEFORE.search(before)):
                continue
        found.append(Detection(ENTITY, match.start(), match.end(), SCORE, "ProperNounRecognizer"))
    for match in _IDENTIFIER.finditer(text):
        parts = _IDENTIFIER_PARTS.findall(match.group(0))
        # A one-letter prefix makes a brand of English words (iPhone, eBay, xDoctor).
        brand = len(parts[0]) == 1 and match.group(0)[1:2].isupper()
        if brand or any(len(part) > 2 and part.lower() not in known for part in parts):
            found.append(Detection(ENTITY, match.start(), match.end(), SCORE, "ProperNounRecognizer"))
    found.extend(_rare_lowercase_words(text, known))
    for match in _NAMED.finditer(text):
        name = match.group("name").rstrip(".’'")
        if any(ch.isalpha() for ch in name):
            start = match.start("name")
            found.append(Detection(ENTITY, start, start + len(name), SCORE, "ProperNounRecognizer"))
    for match in _QUOTED_TITLE.finditer(text):
        found.append(Detection(ENTITY, match.start(), match.end(), SCORE, "ProperNounRecognizer"))
    return list(dict.fromkeys(found))  # one span found by two rules is one detection
