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
by nature), and so are words of one or two letters on their own.
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


def find_proper_nouns(text: str) -> list[Detection]:
    known = known_words()
    found = []
    for match in _SPAN.finditer(text):
        words = [w for w in match.group(0).split() if w.lower() not in _CONNECTORS]
        if not any(_unknown(word, known) for word in words):
            continue
        if len(words) == 1:
            before = text[max(0, match.start() - 8):match.start()]
            if len(words[0]) <= 2 or (_POSITIONAL.search(before) and not _TITLE_BEFORE.search(before)):
                continue
        found.append(Detection(ENTITY, match.start(), match.end(), SCORE, "ProperNounRecognizer"))
    return found
