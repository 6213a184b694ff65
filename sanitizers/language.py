"""Which of the configured languages a text is in, from stop-word counts (no model, microseconds).

Used to route a text to that language's NER model. Short or mixed texts fall back to the first
configured language, which is what a policy lists first for a reason.
"""

from __future__ import annotations

import regex

from sanitizers.recognizers.context import stop_words

_WORD = regex.compile(r"\p{L}+")
# Enough words to tell the languages apart; longer texts are judged on their start.
_SAMPLE_WORDS = 200
_MIN_HITS = 2


def guess_language(text: str, languages: tuple[str, ...]) -> str:
    """The configured language with the most stop words in the text; the first one when unsure."""
    if len(languages) == 1:
        return languages[0]
    counts = dict.fromkeys(languages, 0)
    for number, match in enumerate(_WORD.finditer(text)):
        if number == _SAMPLE_WORDS:
            break
        word = match.group().lower()
        for language in languages:
            if word in stop_words(language):
                counts[language] += 1
    best = max(languages, key=lambda language: counts[language])
    if counts[best] < _MIN_HITS or list(counts.values()).count(counts[best]) > 1:
        return languages[0]
    return best
