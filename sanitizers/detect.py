"""Detection: a presidio-analyzer engine that works offline, behind a per-segment cache.

`Detector.analyze(text) -> list[Detection]` returns positions, entity types and scores — never the
matched text — so nothing downstream can leak a value by logging a detection.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from sanitizers.types import Detection

logger = logging.getLogger(__name__)

# The bundled public-suffix snapshot; an empty URL tuple means tldextract never fetches the list.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

# Predefined recognizers whose entities come from an NER model; without one they find nothing.
_NER_RECOGNIZERS = {"SpacyRecognizer"}


class DetectorConfigError(ValueError):
    """The detection settings cannot be built into an engine (raised at start-up, never per request)."""


@dataclass(frozen=True)
class CustomRecognizer:
    name: str
    entity: str
    patterns: Sequence[tuple[str, str, float]] = ()  # (name, regex, score)
    context: Sequence[str] = ()
    deny_list: Sequence[str] = ()
    deny_list_score: float = 1.0


@dataclass(frozen=True)
class DetectorSettings:
    language: str = "en"
    ner: str = "none"
    entities: Sequence[str] = ()
    allow_list: Sequence[str] = ()
    min_score: float = 0.0
    custom: Sequence[CustomRecognizer] = ()
    cache_size: int = 4096
    chunk_chars: int = 4000
    chunk_overlap: int = 100


def _lemma(word: str) -> str:
    """A tiny English lemmatizer: enough for context words ("phones" → "phone", "cards" → "card")."""
    lower = word.lower()
    if len(lower) > 4 and lower.endswith("ies"):
        return lower[:-3] + "y"
    if len(lower) > 4 and lower.endswith(("ses", "xes", "zes", "ches", "shes")):
        return lower[:-2]
    if len(lower) > 3 and lower.endswith("s") and not lower.endswith(("ss", "us", "is")):
        return lower[:-1]
    return lower


class BlankSpacyNlpEngine(NlpEngine):
    """Tokens and lemmas from a blank spaCy pipeline: no model, no download, no NER."""

    def __init__(self, languages: Iterable[str] = ("en",)) -> None:
        self.nlp = {}
        for language in languages:
            nlp = spacy.blank(language)
            nlp.max_length = 10**9  # chunking bounds the size; the blank tokenizer is linear
            self.nlp[language] = nlp

    def load(self) -> None:  # built in __init__
        return None

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        doc = self.nlp[language].make_doc(text)
        # Presidio's context enhancer walks the tokens once per match; iterating a Doc builds new
        # Token objects every time (quadratic churn), so hand it each token once, in a list.
        tokens = list(doc)
        return NlpArtifacts(
            entities=[],
            tokens=tokens,  # type: ignore[arg-type]
            tokens_indices=[token.idx for token in tokens],
            lemmas=[_lemma(token.text) for token in tokens],
            nlp_engine=self,
            language=language,
        )

    def process_batch(self, texts: Iterable[str], language: str, **_: object) -> Iterator[tuple[str, NlpArtifacts]]:
        for text in texts:
            yield text, self.process_text(text, language)

    def is_stopword(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_stop

    def is_punct(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_punct

    def get_supported_entities(self) -> list[str]:
        return []

    def get_supported_languages(self) -> list[str]:
        return list(self.nlp)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with the top-level-domain check done on the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLD(pattern_text).suffix)


def _custom_recognizer(spec: CustomRecognizer, language: str) -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity=spec.entity,
        name=spec.name,
        supported_language=language,
        patterns=[Pattern(name, regex, score) for name, regex, score in spec.patterns] or None,
        deny_list=list(spec.deny_list) or None,
        deny_list_score=spec.deny_list_score,
        context=list(spec.context) or None,
    )


def build_analyzer(settings: DetectorSettings) -> AnalyzerEngine:
    if settings.ner != "none":
        raise DetectorConfigError(
            f"detection.ner: {settings.ner!r} is not available in this build; use 'none' "
            "(pattern recognizers only)"
        )
    language = settings.language
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language])
    for recognizer in list(registry.recognizers):
        if recognizer.name in _NER_RECOGNIZERS or isinstance(recognizer, EmailRecognizer):
            registry.remove_recognizer(recognizer.name)
    registry.add_recognizer(OfflineEmailRecognizer(supported_language=language))
    for spec in settings.custom:
        registry.add_recognizer(_custom_recognizer(spec, language))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=BlankSpacyNlpEngine([language]),
        supported_languages=[language],
        default_score_threshold=settings.min_score,
    )


def chunk_spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows covering [0, length) of at most `size` characters, each overlapping the previous one."""
    if length <= size:
        return [(0, length)]
    step = max(1, size - overlap)
    spans = []
    start = 0
    while True:
        end = min(length, start + size)
        spans.append((start, end))
        if end == length:
            return spans
        start += step


class Detector:
    """Thread-safe: the engine is read-only after construction; the cache has its own lock."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.engine = build_analyzer(settings)
        self.entities = list(settings.entities) or None
        self._cache: OrderedDict[str, tuple[Detection, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def warm_up(self) -> None:
        self._analyze_uncached("Warm-up: mail a@example.com, call 212-555-0100, visit https://example.com today.")

    def analyze(self, text: str) -> tuple[Detection, ...]:
        if not text.strip():
            return ()
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self.cache_hits += 1
                return cached
            self.cache_misses += 1
        result = self._analyze_uncached(text)
        if self.settings.cache_size:
            with self._lock:
                self._cache[text] = result
                if len(self._cache) > self.settings.cache_size:
                    self._cache.popitem(last=False)
        return result

    def _analyze_uncached(self, text: str) -> tuple[Detection, ...]:
        spans = chunk_spans(len(text), self.settings.chunk_chars, self.settings.chunk_overlap)
        # (entity, start, end) → best (score, recognizer), and which chunks reported the span.
        best: dict[tuple[str, int, int], tuple[float, str]] = {}
        seen_in: dict[tuple[str, int, int], list[int]] = {}
        for number, (chunk_start, chunk_end) in enumerate(spans):
            results = self.engine.analyze(
                text=text[chunk_start:chunk_end],
                language=self.settings.language,
                entities=self.entities,
                allow_list=list(self.settings.allow_list) or None,
            )
            for result in results:
                key = (result.entity_type, result.start + chunk_start, result.end + chunk_start)
                recognizer = (result.recognition_metadata or {}).get("recognizer_name", "")
                score = round(float(result.score), 4)
                # The same span seen by two chunks may score differently (context words in range): keep the best.
                if key not in best or score > best[key][0]:
                    best[key] = (score, recognizer)
                seen_in.setdefault(key, []).append(number)
        if len(spans) > 1:
            self._drop_cut_matches(spans, best, seen_in)
        found = [Detection(entity, start, end, score, recognizer) for (entity, start, end), (score, recognizer) in best.items()]
        return tuple(sorted(found, key=lambda d: (d.start, -d.end, d.entity)))

    @staticmethod
    def _drop_cut_matches(
        spans: list[tuple[int, int]],
        best: dict[tuple[str, int, int], tuple[float, str]],
        seen_in: dict[tuple[str, int, int], list[int]],
    ) -> None:
        """Remove matches a chunk made on a value its edge cut in two ("doe@example.com" from
        "john.doe@example.com"): a span is such a fragment when, in every chunk that reported it, it lies
        inside a longer match that runs over that chunk's edge (so the neighbouring chunk saw it whole).
        A fragment of a value longer than the overlap, which no chunk sees whole, is kept: better a part
        protected than the whole value sent."""
        keys = sorted(best, key=lambda k: (k[1], -k[2]))
        starts = [start for _, start, _ in keys]
        longest = max((end - start for _, start, end in keys), default=0)

        def crossing(edge: int) -> list[tuple[int, int]]:
            """The matches running over position `edge` (start < edge < end)."""
            low, high = bisect_left(starts, edge - longest), bisect_left(starts, edge)
            return [(s, e) for _, s, e in keys[low:high] if e > edge]

        last = len(spans) - 1
        # Per chunk: the matches running over its inner edges (the first chunk has no left one, the last no right one).
        crossers = [
            (crossing(chunk_start) if number else []) + (crossing(chunk_end) if number < last else [])
            for number, (chunk_start, chunk_end) in enumerate(spans)
        ]
        for key in keys:
            _, start, end = key

            def is_fragment(number: int) -> bool:
                return any(s <= start and end <= e and (s, e) != (start, end) for s, e in crossers[number])

            if all(is_fragment(number) for number in seen_in[key]):
                del best[key]
