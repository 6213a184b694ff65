"""Detection: a presidio-analyzer engine that works offline, behind a per-segment cache.

`Detector.analyze(text) -> list[Detection]` returns positions, entity types and scores — never the
matched text — so nothing downstream can leak a value by logging a detection.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

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
    extra: dict[str, object] = field(default_factory=dict)


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
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[_lemma(token.text) for token in doc],
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

    def supported_entities(self) -> list[str]:
        return sorted(self.engine.get_supported_entities(self.settings.language))

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
        found: set[Detection] = set()
        spans = chunk_spans(len(text), self.settings.chunk_chars, self.settings.chunk_overlap)
        for chunk_start, chunk_end in spans:
            results = self.engine.analyze(
                text=text[chunk_start:chunk_end],
                language=self.settings.language,
                entities=self.entities,
                allow_list=list(self.settings.allow_list) or None,
            )
            for result in results:
                start, end = result.start + chunk_start, result.end + chunk_start
                # A match touching an inner chunk edge may be cut; the overlapping chunk sees it whole.
                cut_left = chunk_start > 0 and result.start == 0
                cut_right = chunk_end < len(text) and result.end == chunk_end - chunk_start
                if (cut_left or cut_right) and len(spans) > 1:
                    continue
                recognizer = (result.recognition_metadata or {}).get("recognizer_name", "")
                found.add(Detection(result.entity_type, start, end, round(float(result.score), 4), recognizer))
        return tuple(sorted(found, key=lambda d: (d.start, -d.end, d.entity)))
