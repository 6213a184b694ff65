"""Sentences and clauses of a prompt, as character spans (no copies of the text are kept).

Rule-based and language-light: a sentence ends at `.`, `!`, `?` (or `…`) followed by whitespace and
something that can start a sentence, unless the word before is a known abbreviation ("Dr.", "e.g.")
or a single initial ("J."); every line break ends a sentence too (prompts are often lists or forms).
Clauses split a sentence at `;` and before a comma + conjunction ("…, so can you …").
"""

from __future__ import annotations

import re

__all__ = ["clause_spans", "sentence_spans"]

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt no vs etc e.g i.e cf approx dept inc ltd co corp fig al jan feb mar apr "
    "jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d gen col lt sgt rev hon ave blvd".split()
)
_END = re.compile(r"[.!?…]+[\"')\]”’]*(?=\s)")
_NEXT_START = re.compile(r"\s+[\"'(\[“‘]?[A-Z0-9À-Þ*#•-]")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
_CLAUSE_BREAK = re.compile(
    r";\s+|,\s+(?=(?:and|but|so|because|since|although|though|while|whereas|which)\b)"
    r"|\s+(?=(?:so|because)\s+(?:can|could|would|will|please|i\s+need|help)\b)",
    re.IGNORECASE,
)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _word_before(line: str, period: int) -> str | None:
    """The letters and dots before the period at `period`, from the first letter ("Dr", "e.g"), or None.
    Scanned backwards, so each sentence end costs only its own word, however long the line."""
    start = period
    while start > 0 and line[start - 1] in _WORD_CHARS:
        start -= 1
    while start < period and line[start] == ".":
        start += 1
    return line[start:period] if start < period else None


def _sentence_ends(line: str) -> list[int]:
    ends = []
    for match in _END.finditer(line):
        stop = match.end()
        if not _NEXT_START.match(line, stop):
            continue  # "e.g. the", "3 p.m. today": a lower-case word follows
        if match.group(0).startswith("."):
            word = (_word_before(line, match.start()) or "").lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        ends.append(stop)
    return ends


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence, trimmed; together they cover every non-space character."""
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line in text.splitlines(keepends=True):
        cursor = line_start
        for end in _sentence_ends(line):
            span = _trimmed(text, cursor, line_start + end)
            if span:
                spans.append(span)
            cursor = line_start + end
        span = _trimmed(text, cursor, line_start + len(line))
        if span:
            spans.append(span)
        line_start += len(line)
    return spans


def clause_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The clauses of text[start:end] (one sentence), trimmed, in text coordinates."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _CLAUSE_BREAK.finditer(text, start, end):
        span = _trimmed(text, cursor, match.start() + (1 if match.group(0)[0] in ";," else 0))
        if span and span[1] - span[0] > 1:
            spans.append(span)
            cursor = match.end()
    span = _trimmed(text, cursor, end)
    if span:
        spans.append(span)
    return spans
