"""Clean-ups applied to model and gazetteer spans before they become detections.

- `drop_nrp_conflicts`: a nationality or religion word the model calls a place or an organization
  ("Italian", "Muslims") is an NRP; the gazetteer's reading wins.
- `join_addresses`: the pieces of a postal address the model finds one by one ("Koskikatu 25",
  "Artilleros", "Uruguay") become one LOCATION covering the house number, the separators and the
  postal code, so the whole address is protected as one value.
"""

from __future__ import annotations

import regex

from sanitizers.ner import NerSpan

# Between two parts of one address: commas, line breaks and spaces only, a few characters.
_ADDRESS_GAP = regex.compile(r"[ \t]*(?:,[ \t]*)?(?:\r?\n[ \t]*)?(?:,[ \t]*)?")
_MAX_GAP = 6
# A house number just before a street ("1668 Glyn St"), a postal code just after a place
# ("Uruguay 64677", "Bristol BS1 4DJ", "75534-030"); a year after a place ("Berlin 2019") is not one.
_HOUSE_NUMBER = regex.compile(r"(?<![\w-])\d{1,6}[A-Za-z]?[ \t]+$")
_POSTAL_CODE = regex.compile(
    r",?[ \t]+(?!(?:19|20)\d\d(?![\w-]))(?:\d{3,6}(?:[- ]\d{2,4})?|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)(?![\w-])"
)


def drop_nrp_conflicts(spans: list[tuple[NerSpan, str]], text: str, nrp_words: frozenset[str]) -> list[tuple[NerSpan, str]]:
    return [
        (span, source)
        for span, source in spans
        if span.label == "NRP" or text[span.start : span.end].casefold() not in nrp_words
    ]


def join_addresses(spans: list[tuple[NerSpan, str]], text: str) -> list[tuple[NerSpan, str]]:
    places = sorted((item for item in spans if item[0].label == "LOCATION"), key=lambda item: item[0].start)
    others = [item for item in spans if item[0].label != "LOCATION"]
    joined: list[tuple[NerSpan, str]] = []
    for span, source in places:
        if joined:
            last, last_source = joined[-1]
            gap = text[last.end : span.start]
            if span.start <= last.end or (len(gap) <= _MAX_GAP and _ADDRESS_GAP.fullmatch(gap)):
                merged = NerSpan("LOCATION", last.start, max(last.end, span.end), max(last.score, span.score))
                joined[-1] = (merged, last_source)
                continue
        joined.append((span, source))
    return others + [(_with_numbers(span, text), source) for span, source in joined]


def _with_numbers(span: NerSpan, text: str) -> NerSpan:
    start, end = span.start, span.end
    house = _HOUSE_NUMBER.search(text, max(0, start - 12), start)
    if house is not None:
        start = house.start()
    postal = _POSTAL_CODE.match(text, end, min(len(text), end + 14))
    if postal is not None:
        end = postal.end()
    if (start, end) == (span.start, span.end):
        return span
    return NerSpan(span.label, start, end, span.score)
