"""Context words without spaCy: Presidio's `LemmaContextAwareEnhancer`, replayed on a few words.

Presidio tokenizes the whole text with spaCy, lemmatizes every token, and for each match collects
the lemmas of up to ``prefix_count + 1`` keyword tokens ending at the token that holds the match
start, plus the first keyword from that token on (``suffix_count`` = 0 → one). Keywords are lemmas
that are neither stop words, punctuation, "be" nor "-PRON-" and hold no ":" (Presidio splits those
on ":" when listing keywords, so the whole lemma is never found among them). A recognizer context
word found as a *substring* of any of them raises the score by 0.35, to at least 0.4, at most 1.

Here only the few dozen characters before a match are tokenized, by a compact re-implementation of
spaCy's rule-based tokenizer (whitespace runs, prefix/suffix/infix punctuation, URLs, contractions),
and the lemmatizer is the proxy's tiny English one. The stop-word lists are spaCy's, read from its
data files without importing spaCy.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import runpy
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

import regex

logger = logging.getLogger(__name__)

SIMILARITY_FACTOR = 0.35  # LemmaContextAwareEnhancer defaults (presidio-analyzer 2.2)
MIN_SCORE_WITH_CONTEXT = 0.4
PREFIX_COUNT = 5
SUFFIX_COUNT = 0


def lemma(word: str) -> str:
    """A tiny English lemmatizer: enough for context words ("phones" → "phone", "cards" → "card")."""
    lower = word.lower()
    if len(lower) > 4 and lower.endswith("ies"):
        return lower[:-3] + "y"
    if len(lower) > 4 and lower.endswith(("ses", "xes", "zes", "ches", "shes")):
        return lower[:-2]
    if len(lower) > 3 and lower.endswith("s") and not lower.endswith(("ss", "us", "is")):
        return lower[:-1]
    return lower


@cache
def stop_words(language: str) -> frozenset[str]:
    """spaCy's stop words for `language`, read from its data module (importing spaCy costs ~1 s)."""
    spec = importlib.util.find_spec("spacy")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "lang" / language / "stop_words.py"
        if path.is_file():
            # spaCy's own data module, run as a file: no spaCy package import.
            words = runpy.run_path(str(path)).get("STOP_WORDS")
            if isinstance(words, (set, frozenset)):
                return frozenset(str(word) for word in words)
    logger.warning("no spaCy stop words for %r: context windows will count every word", language)
    return frozenset()


def is_punct(text: str) -> bool:
    """spaCy's `is_punct`: every character is Unicode punctuation."""
    return all(unicodedata.category(char).startswith("P") for char in text)


# --- spaCy's tokenizer rules (spacy/lang/punctuation.py, char_classes.py, tokenizer_exceptions.py) ---
_PUNCT = r"…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTES = r"'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"
_HYPHENS = r"(?:-|–|—|--|---|——|~)"
_UNITS = (
    r"km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h|"
    r"kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%|км|км²|км³|м|м²|м³|дм|дм²|дм³|см|см²|см³|мм|"
    r"мм²|мм³|нм|кг|г|мг|м/с|км/ч|кПа|Па|мбар|Кб|КБ|кб|Мб|МБ|мб|Гб|ГБ|гб|Тб|ТБ|тбكم|كم²|كم³|م|م²|م³|سم|سم²|"
    r"سم³|مم|مم²|مم³|كم|غرام|جرام|جم|كغ|ملغ|كوب|اكواب"
)
_PREFIX = regex.compile(
    r"^(?:§|%|=|—|–|\+(?![0-9])|[" + _PUNCT + r"]|\.\.+|…|[" + _QUOTES + r"]|''|\p{Sc}|\p{So})"
)
_SUFFIX = regex.compile(
    r"(?:[" + _PUNCT + r"]|\.\.+|…|[" + _QUOTES + r"]|''|\p{So}|'s|'S|’s|’S|—|–"
    r"|(?<=[0-9])\+|(?<=°[FfCcKk])\.|(?<=[0-9])\p{Sc}|(?<=[0-9])(?:" + _UNITS + r")"
    r"|(?<=[0-9\p{Ll}%²\-+" + _QUOTES + _PUNCT + r"])\.|(?<=\p{Lu}\p{Lu})\."
    # Contractions: spaCy's exceptions split these off ("don't" → "do", "n't"); all are stop words.
    r"|(?<=\p{L})(?:n't|n’t|'m|’m|'re|’re|'ve|’ve|'ll|’ll|'d|’d))$"
)
_INFIX = regex.compile(
    r"\.\.+|…|\p{So}|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[\p{Ll}" + _QUOTES + r"])\.(?=[\p{Lu}" + _QUOTES + r"])"
    r"|(?<=\p{L}),(?=\p{L})|(?<=[\p{L}0-9])" + _HYPHENS + r"(?=\p{L})|(?<=[\p{L}0-9])[:<>=/](?=\p{L})"
)
_URL = regex.compile(
    r"^(?:(?:[\w+\-.]{2,})://)?(?:\S+(?::\S*)?@)?(?:"
    r"(?!(?:10|127)(?:\.\d{1,3}){3})(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
    r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])"
    r"(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
    r"|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    r"(?:\p{Ll}{2,63}))(?::\d{2,5})?(?:[/?#]\S*)?$"
)
_CHUNKS = regex.compile(r"\s+|\S+")
_CHUNKS_BACKWARD = regex.compile(r"(?r)\s+|\S+")
_NON_SPACE = regex.compile(r"\S+")
# The `regex` module's \s (Unicode White_Space) as a stdlib class: stdlib `re` splits several times faster.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WHITE_SPACE_CHARS = frozenset(re.findall(f"[{_WHITE_SPACE}]", "".join(map(chr, range(0x3001)))))
_SPACES = re.compile(f"([{_WHITE_SPACE}]+)")
_CHUNK_START = re.compile(f"(?<=[{_WHITE_SPACE}])[^{_WHITE_SPACE}]")
_FIRST_WINDOW = 128  # characters split when walking left for context words; doubled while more are needed


def _split_chunk(chunk: str, out: list[tuple[int, str]], offset: int) -> None:
    """spaCy's `_split_affixes` + `_attach_tokens` for one run of non-space characters."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    rest = chunk
    last = -1
    while rest and len(rest) != last:
        last = len(rest)
        match = _PREFIX.match(rest)
        pre = match.end() if match else 0
        match = _SUFFIX.search(rest, pre)
        suf = len(rest) - match.start() if match else 0
        if pre and suf and pre + suf <= len(rest):
            prefixes.append(rest[:pre])
            suffixes.append(rest[len(rest) - suf :])
            rest = rest[pre : len(rest) - suf]
        elif pre:
            prefixes.append(rest[:pre])
            rest = rest[pre:]
        elif suf:
            suffixes.append(rest[len(rest) - suf :])
            rest = rest[: len(rest) - suf]
    position = offset
    for piece in prefixes:
        out.append((position, piece))
        position += len(piece)
    if rest:
        if _URL.match(rest):
            out.append((position, rest))
        else:
            start = 0
            for match in _INFIX.finditer(rest):
                if match.start() != start:
                    out.append((position + start, rest[start : match.start()]))
                if match.end() != match.start():
                    out.append((position + match.start(), match.group()))
                start = match.end()
            if start < len(rest):
                out.append((position + start, rest[start:]))
        position += len(rest)
    for piece in reversed(suffixes):
        out.append((position, piece))
        position += len(piece)


def _chunk_tokens(chunk: str, offset: int) -> list[tuple[int, str]]:
    """Tokens of one non-space chunk, with fast paths for a word and a word + punctuation mark."""
    if chunk.isalnum():
        return [(offset, chunk)]
    last = chunk[-1]
    if len(chunk) > 1 and chunk[:-1].isalnum() and (
        last in ",;:!?" or (last == "." and (chunk[-2].islower() or chunk[-2].isdigit()))
    ):
        return [(offset, chunk[:-1]), (offset + len(chunk) - 1, last)]
    tokens: list[tuple[int, str]] = []
    _split_chunk(chunk, tokens, offset)
    return tokens


def _tokens_from(text: str, position: int) -> Iterator[str]:
    """Token texts from `position` (which follows a word) on, lazily."""
    previous_word = position > 0 and not text[position - 1].isspace()
    for match in _CHUNKS.finditer(text, position):
        chunk = match.group()
        if chunk[0].isspace():
            piece = chunk[1:] if previous_word and chunk[0] == " " else chunk
            if piece:
                yield piece
            previous_word = False
        else:
            yield from (token for _, token in _chunk_tokens(chunk, match.start()))
            previous_word = True


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, str]]:
    """(offset, token) pairs for text[start:end], as spaCy's blank tokenizer would cut them.

    `start` must be 0 or follow a whitespace character (else the first token may be cut)."""
    tokens: list[tuple[int, str]] = []
    previous_word = start > 0 and not text[start - 1].isspace()
    for match in _CHUNKS.finditer(text, start, len(text) if end is None else end):
        chunk = match.group()
        if chunk[0].isspace():
            # One space after a word is that word's trailing whitespace; any other whitespace is a token.
            if previous_word and chunk[0] == " ":
                if len(chunk) > 1:
                    tokens.append((match.start() + 1, chunk[1:]))
            else:
                tokens.append((match.start(), chunk))
            previous_word = False
        else:
            tokens.extend(_chunk_tokens(chunk, match.start()))
            previous_word = True
    return tokens


class ContextScorer:
    """Decides, per match, whether one of its recognizer's context words is near (Presidio's rules).

    Thread-safe: read-only after construction but for a keyword cache (single dict operations)."""

    def __init__(self, languages: Iterable[str], prefix_count: int = PREFIX_COUNT) -> None:
        stops: set[str] = set()
        for language in languages:
            stops |= stop_words(language)
        self.stops = frozenset(stops)
        self.prefix_count = prefix_count
        self._keywords: dict[str, str] = {}
        self._chunks: dict[str, tuple[str, ...]] = {}

    def _keyword(self, token: str) -> str:
        """The token's lemma if Presidio counts it as a keyword, else ""."""
        word = self._keywords.get(token)
        if word is None:
            word = lemma(token)
            if word in self.stops or word in ("be", "-pron-") or ":" in word or is_punct(word):
                word = ""
            if len(self._keywords) > 100_000:
                self._keywords.clear()
            self._keywords[token] = word
        return word

    def _chunk_keywords(self, chunk: str) -> tuple[str, ...]:
        """The keywords of one non-space chunk, right to left."""
        words = self._chunks.get(chunk)
        if words is None:
            words = tuple(w for w in (self._keyword(token) for _, token in reversed(_chunk_tokens(chunk, 0))) if w)
            if len(self._chunks) > 100_000:
                self._chunks.clear()
            self._chunks[chunk] = words
        return words

    def _keywords_left_of(self, text: str, end: int, out: list[str], needed: int) -> None:
        """Append the keywords of text[:end] to `out`, right to left, until it holds more than `needed`.
        Works on windows split at whitespace in one C-level call; each window starts at a chunk start."""
        high, window = end, _FIRST_WINDOW
        while high > 0 and len(out) <= needed:
            low = 0
            if high > window:
                found = _CHUNK_START.search(text, high - window, high)
                low = found.start() if found else 0
            window = min(window * 2, 8192)
            parts = _SPACES.split(text[low:high])
            for index in range(len(parts) - 1, -1, -1):
                part = parts[index]
                if not part:
                    continue
                if part[0].isspace():
                    # One space after a word is that word's trailing whitespace (not at the text's start).
                    if part[0] == " " and not (low == 0 and index == 1 and not parts[0]):
                        part = part[1:]
                    word = self._keyword(part) if part else ""
                    if word:
                        out.append(word)
                else:
                    out.extend(self._chunk_keywords(part))
                if len(out) > needed:
                    return
            high = low

    def surrounding_words(self, text: str, start: int) -> set[str]:
        """The keywords Presidio compares with context words, for a match starting at `start`:
        up to prefix_count + 1 ending at the token holding `start`, and the first from there on."""
        wanted = self.prefix_count + 1
        # Walk whitespace-separated chunks right to left from the one holding (or following) `start`.
        chunk = _NON_SPACE.search(text, start)
        right = chunk.end() if chunk else len(text)
        at_or_after: list[str] = []  # tokens from the match's token on, right to left
        before: list[str] = []
        if chunk is not None and chunk.start() == start:
            # The usual case, `start` in a chunk: its tokens, then keywords further left (no offsets needed).
            chunk_start = start
            while chunk_start > 0 and text[chunk_start - 1] not in _WHITE_SPACE_CHARS:
                chunk_start -= 1
            for offset, token in reversed(_chunk_tokens(text[chunk_start:right], chunk_start)):
                if not before and (offset == start or start < offset + len(token)):
                    at_or_after.append(token)
                    continue
                if not before:
                    before.append("")
                word = self._keyword(token)
                if word:
                    before.append(word)
            if len(before) <= wanted:
                before = before or [""]
                self._keywords_left_of(text, chunk_start, before, wanted)
            return self._words(text, right, at_or_after, before)
        for match in _CHUNKS_BACKWARD.finditer(text, 0, right):
            piece = match.group()
            if piece[0].isspace():
                # One space after a word is that word's trailing whitespace; any other whitespace is a token.
                if match.start() > 0 and piece[0] == " ":
                    piece = piece[1:]
                tokens = [(match.end() - len(piece), piece)] if piece else []
            else:
                tokens = _chunk_tokens(piece, match.start())
            for offset, token in reversed(tokens):
                if len(before) == 0 and (offset == start or start < offset + len(token)):
                    at_or_after.append(token)  # at or after the match's token (Presidio's index search)
                    continue
                if not before:  # the token left of the match's token: close the forward part
                    before.append("")
                word = self._keyword(token)
                if word:
                    before.append(word)
                    if len(before) > self.prefix_count + 1:
                        break
            if before:
                # Left of the match's token only keywords count: the rest of the walk needs no offsets.
                if len(before) <= self.prefix_count + 1:
                    self._keywords_left_of(text, match.start(), before, self.prefix_count + 1)
                break
        return self._words(text, right, at_or_after, before)

    def _words(self, text: str, right: int, at_or_after: list[str], before: list[str]) -> set[str]:
        wanted = self.prefix_count + 1
        if not at_or_after:  # Presidio would find no token (and fail): nothing to add
            return set()
        own = self._keyword(at_or_after[-1])  # the match's token counts as a prefix word too
        words = [w for w in [own, *before[1:]] if w][:wanted]
        after = next((w for w in map(self._keyword, reversed(at_or_after)) if w), "")
        if not after:  # only stop words and punctuation so far: look further, chunk by chunk
            after = next((w for w in map(self._keyword, _tokens_from(text, right)) if w), "")
        return set(words) | ({after} if after else set())

    @staticmethod
    def supportive(words: set[str], context: tuple[str, ...]) -> bool:
        """Presidio's substring test: a context word inside any surrounding keyword."""
        return any(c in word for c in context for word in words)


def boost(score: float) -> float:
    """The enhancer's arithmetic for a supported match."""
    return min(1.0, max(score + SIMILARITY_FACTOR, MIN_SCORE_WITH_CONTEXT))
