"""Detection: the fast pattern tier, an NER model and the name gazetteers, behind a per-segment cache.

`Detector.analyze(text) -> tuple[Detection, ...]` returns positions, entity types and scores — never
the matched text — so nothing downstream can leak a value by logging a detection.

Steps per segment (each documented where it lives):
1. language — which configured language the text is in (`sanitizers.language`), to pick its NER;
2. chunk — long text is cut into overlapping windows so every step stays linear;
3. patterns — regexes with validators and context words (`sanitizers.recognizers`);
4. NER — the policy's model (`sanitizers.ner.loader`), plus the name/NRP gazetteers (and, opt-in, the
   proper-noun heuristic of `sanitizers.recognizers.proper_nouns` and the CJK rules of
   `sanitizers.recognizers.east_asian`);
5. merge — same-type overlapping model spans are united (a name half-found is a name leaked),
   spans without letters are dropped, thresholds, entity filter and allow list applied;
6. stitch — matches a chunk edge cut in two are dropped in favour of the whole one.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sanitizers._light_imports import import_nlp_libraries

import_nlp_libraries()  # before anything imports spaCy or Presidio

from sanitizers.language import guess_language  # noqa: E402
from sanitizers.ner import NerModel, NerSpan, NerUnavailable  # noqa: E402
from sanitizers.ner.gazetteer import NameGazetteer, nrp_words  # noqa: E402
from sanitizers.ner.loader import load_ner  # noqa: E402
from sanitizers.ner.postprocess import drop_nrp_conflicts, join_addresses  # noqa: E402
from sanitizers.recognizers import CustomSpec as CustomRecognizer  # noqa: E402
from sanitizers.recognizers import PatternTier  # noqa: E402
from sanitizers.recognizers.east_asian import find_east_asian_entities  # noqa: E402
from sanitizers.recognizers.proper_nouns import find_proper_nouns  # noqa: E402
from sanitizers.recognizers.secrets import find_secrets  # noqa: E402
from sanitizers.recognizers.supplementary import SUPPLEMENTARY  # noqa: E402
from sanitizers.types import Detection  # noqa: E402


__all__ = ["CustomRecognizer", "Detector", "DetectorConfigError", "DetectorSettings", "chunk_spans"]


class DetectorConfigError(ValueError):
    """The detection settings cannot be built into an engine (raised at start-up, never per request)."""


@dataclass(frozen=True)
class DetectorSettings:
    languages: Sequence[str] = ("en",)
    # One NER spec for every text, or one per language; see sanitizers.ner.loader for the forms.
    ner: str | Mapping[str, str] = "none"
    ner_labels: Mapping[str, str] = field(default_factory=dict)
    gazetteers: bool = True
    entities: Sequence[str] = ()
    allow_list: Sequence[str] = ()
    min_score: float = 0.0
    # The policy's thresholds, so patterns that can never reach them are not run (results unchanged).
    entity_thresholds: Mapping[str, float] = field(default_factory=dict)
    default_threshold: float = 0.0
    custom: Sequence[CustomRecognizer] = ()
    cache_size: int = 4096
    chunk_chars: int = 4000
    chunk_overlap: int = 100
    # Capitalized words outside the English vocabulary → PROPER_NOUN (sanitizers.recognizers.proper_nouns).
    proper_nouns: bool = False
    # Names in Chinese, Japanese and Korean text → PERSON / LOCATION / ORGANIZATION (sanitizers.recognizers.east_asian).
    east_asian: bool = False
    # Passwords, API keys, tokens and the user names beside them → SECRET / USERNAME (recognizers.secrets).
    secrets: bool = True


def _load_models(settings: DetectorSettings) -> dict[str, NerModel]:
    """Language → NER model. One spec shared by all languages loads one model."""
    specs = settings.ner if isinstance(settings.ner, Mapping) else dict.fromkeys(settings.languages, settings.ner)
    loaded: dict[str, NerModel | None] = {}
    models: dict[str, NerModel] = {}
    for language, spec in specs.items():
        if spec not in loaded:
            try:
                loaded[spec] = load_ner(spec, settings.ner_labels)
            except NerUnavailable as exc:
                raise DetectorConfigError(f"detection.ner: {spec!r}: {exc}") from None
        model = loaded[spec]
        if model is not None:
            models[language] = model
    return models


def _union_same_entity(spans: list[tuple[NerSpan, str]]) -> list[tuple[NerSpan, str]]:
    """Overlapping spans of one entity type become their union with the best score: the model saw
    "Faina D." and the gazetteer "Faina D. Yefremova" — protect the whole name. The recognizer named
    is the best-scoring contributor's."""
    merged: list[tuple[NerSpan, str]] = []
    for span, source in sorted(spans, key=lambda item: (item[0].label, item[0].start, -item[0].end)):
        if merged and merged[-1][0].label == span.label and span.start < merged[-1][0].end:
            last, last_source = merged[-1]
            union = NerSpan(last.label, last.start, max(last.end, span.end), max(last.score, span.score))
            merged[-1] = (union, last_source if last.score >= span.score else source)
        else:
            merged.append((span, source))
    return merged


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
    """Thread-safe: the engines are read-only after construction; the cache and each NER model have a lock."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.languages = tuple(settings.languages)
        self.patterns = PatternTier(
            languages=self.languages,
            custom=SUPPLEMENTARY + tuple(settings.custom),
            allow_list=tuple(settings.allow_list),
            entities=tuple(settings.entities) or None,
            thresholds=settings.entity_thresholds,
            default_threshold=settings.default_threshold,
        )
        self.models = _load_models(settings)
        # spaCy pipelines are not documented as thread-safe; one call at a time per model.
        self._model_locks = {id(model): threading.Lock() for model in self.models.values()}
        self.gazetteer = NameGazetteer() if settings.gazetteers else None
        self.entities = frozenset(settings.entities)
        self.allow = frozenset(value.casefold() for value in settings.allow_list)
        self._cache: OrderedDict[str, tuple[Detection, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def warm_up(self) -> None:
        self._analyze_uncached(
            "Warm-up: Maria Keller of Acme Corp in Berlin mails a@example.com, calls 212-555-0100, "
            "visits https://example.com today."
        )

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
        model = self.models.get(guess_language(text, self.languages)) if self.models else None
        spans = chunk_spans(len(text), self.settings.chunk_chars, self.settings.chunk_overlap)
        # (entity, start, end) → best (score, recognizer), and which chunks reported the span.
        best: dict[tuple[str, int, int], tuple[float, str]] = {}
        seen_in: dict[tuple[str, int, int], list[int]] = {}
        for number, (chunk_start, chunk_end) in enumerate(spans):
            chunk = text[chunk_start:chunk_end]
            for detection in self._detect_chunk(chunk, model):
                if detection.score < self.settings.min_score:
                    continue
                key = (detection.entity, detection.start + chunk_start, detection.end + chunk_start)
                score = round(float(detection.score), 4)
                # The same span seen by two chunks may score differently (context words in range): keep the best.
                if key not in best or score > best[key][0]:
                    best[key] = (score, detection.recognizer)
                seen_in.setdefault(key, []).append(number)
        if len(spans) > 1:
            self._drop_cut_matches(spans, best, seen_in)
        found = [Detection(entity, start, end, score, recognizer) for (entity, start, end), (score, recognizer) in best.items()]
        return tuple(sorted(found, key=lambda d: (d.start, -d.end, d.entity)))

    def _wanted(self, detection: Detection, chunk: str) -> bool:
        """The policy's entity filter and allow list, for the recognizers outside the pattern tier."""
        if self.entities and detection.entity not in self.entities:
            return False
        return chunk[detection.start:detection.end].casefold() not in self.allow

    def _detect_chunk(self, chunk: str, model: NerModel | None) -> list[Detection]:
        detections = list(self.patterns.analyze(chunk))
        if self.settings.secrets:
            detections.extend(d for d in find_secrets(chunk) if self._wanted(d, chunk))
        found: list[tuple[NerSpan, str]] = []
        if model is not None:
            with self._model_locks[id(model)]:
                found.extend((span, model.name) for span in model.predict(chunk))
        if self.gazetteer is not None:
            found.extend((span, self.gazetteer.name) for span in self.gazetteer.predict(chunk))
        found = join_addresses(drop_nrp_conflicts(found, chunk, nrp_words()), chunk)
        if self.settings.proper_nouns:
            detections.extend(d for d in find_proper_nouns(chunk) if self._wanted(d, chunk))
        if self.settings.east_asian:
            detections.extend(d for d in find_east_asian_entities(chunk) if self._wanted(d, chunk))
        for span, source in _union_same_entity(found):
            value = chunk[span.start : span.end]
            # Digits or punctuation alone are never a name, place or organization ("PERSON: 1985").
            if not any(ch.isalpha() for ch in value):
                continue
            if self.entities and span.label not in self.entities:
                continue
            if value.casefold() in self.allow:
                continue
            detections.append(Detection(span.label, span.start, span.end, span.score, source))
        return detections

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
