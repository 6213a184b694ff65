"""Capitalized spans the English vocabulary does not know → `PROPER_NOUN` (opt-in: `detection.proper_nouns`).

NER models miss rare names, products and small organizations ("Napco", "Waqas", "Cloudflare Workers");
what they have in common is a capital letter on a word no English dictionary lists. This recognizer
finds runs of capitalized words (Title, ALLCAPS, CamelCase; joined by spaces and the connectors of names:
of, the, and, &, de, van, von, der, da, di, du, la, le, al, bin) and keeps a run when at least one of its
words is outside the vocabulary: the name gazetteer's common words plus the whole-word vocabulary of the
built-in NER's tokenizer (~22k uncased English words, shipped in the package). It is a high-recall,
low-precision heuristic (score 0.5): "Module 3: Firewall Rules" is taken for a name, which costs some
answer quality; enable it where leaking a rare name costs more (see policies/minimal-disclosure.yaml).

A single word at the start of a sentence, line or list item is skipped (capitalized by position, not
by nature), and so are words of one or two letters on their own. Two more shapes are names as well:
camelCase words with a part outside the vocabulary (`truHealth`, `erxesHQ`, code identifiers), and the
authors of a citation ("Sakr et al.", reported as PERSON with the "et al.").
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from sanitizers.types import Detection

__all__ = ["ENTITY", "find_proper_nouns", "known_words"]

ENTITY = "PROPER_NOUN"
SCORE = 0.5
_TOKENIZER = Path(__file__).resolve().parent.parent / "ner" / "models" / "accurate" / "tokenizer.json"
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
    """Lower-case English words: the gazetteer's common words and the NER tokenizer's whole words."""
    from sanitizers.ner.gazetteer import common_words

    words = set(common_words())
    if _TOKENIZER.is_file():
        vocab = json.loads(_TOKENIZER.read_text(encoding="utf-8")).get("model", {}).get("vocab", {})
        words.update(word for word in vocab if word.isalpha() and word.isascii())
    return frozenset(words)


def _unknown(word: str, known: frozenset[str]) -> bool:
    bare = _POSSESSIVE.sub("", word).strip(".-'’").lower()
    parts = [p for p in re.split(r"[-.'’&]", bare) if p]
    return len(bare) > 2 and any(p not in known and not p.isdigit() for p in parts)


# "Altinier et al." and "Smith and Jones et al.": the authors of a cited work, named as such.
_CITATION = re.compile(r"(?<![\w-])[A-Z][\w'’-]+(?:[ \t]+(?:and|&)[ \t]+[A-Z][\w'’-]+)?[ \t]+et[ \t]+al\.?")
# camelCase words (`truHealth`, `xDoctor`, `addNewDocumentBufferWindow`): product names and code identifiers.
_CAMEL = re.compile(r"(?<![\w@/\\#$-])[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*(?![\w@])")
_CAMEL_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_OPENING_MARK = re.compile(r"[\"“'‘(\[]\s*$")


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
    for match in _CAMEL.finditer(text):
        parts = _CAMEL_PARTS.findall(match.group(0))
        # A one-letter prefix makes a brand of English words (iPhone, eBay, xDoctor).
        if len(parts[0]) == 1 or any(part.lower() not in known for part in parts):
            found.append(Detection(ENTITY, match.start(), match.end(), SCORE, "ProperNounRecognizer"))
    return found
