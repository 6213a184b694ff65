"""Pure scoring functions for the detection benchmark: spans and tokens in, counts out.

No I/O and no detector here, so every rule can be unit-tested on hand-made cases.

Conventions
-----------
- A span is ``(start, end, entity)`` with ``end`` exclusive; a region is ``(start, end)``.
- "Don't care" regions are gold spans of types that are not scored (e.g. TITLE, AGE, product):
  whatever is predicted there counts neither as a true nor as a false positive.
- Predictions carry a score; the caller drops predictions of unscored types before scoring.
- precision = tp / (tp + fp), recall = tp / (tp + fn), F-beta = (1 + b²)·P·R / (b²·P + R); a ratio
  whose denominator is 0 is reported as 0.0 (so every figure lies in [0, 1]).

Three matchings:
- `token_counts` (presidio-research style): the text is cut into tokens (``\\w+|[^\\w\\s]``); a token's
  gold type is that of the gold span overlapping it, its predicted type that of the highest-scoring
  prediction overlapping it; equal types → TP for that type, otherwise FN for the gold type and FP for
  the predicted type ("O" contributes nothing). Tokens in a don't-care region (and in no gold span) are skipped.
- `loose_span_counts`: a prediction is a TP when it overlaps a not yet matched gold span of the same
  type (each gold span matched at most once, the one with the largest overlap first); a prediction that
  only overlaps already matched gold spans of its type is a duplicate (a fragment of a found entity),
  counted as `ignored`, as is an unmatched prediction overlapping a don't-care region; any other
  prediction is an FP; unmatched gold spans are FNs.
- `exact_span_counts`: as loose, but a TP needs identical start, end and type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Span = tuple[int, int, str]
Region = tuple[int, int]

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Prediction:
    """One predicted span with the detector's confidence."""

    start: int
    end: int
    entity: str
    score: float = 1.0


@dataclass(slots=True)
class Counts:
    """True positives, false positives, false negatives (and predictions deliberately not counted)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    ignored: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.ignored += other.ignored

    @property
    def precision(self) -> float:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return ratio(self.tp, self.tp + self.fn)

    def fbeta(self, beta: float) -> float:
        return fbeta(self.precision, self.recall, beta)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "ignored": self.ignored,
            "support": self.tp + self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.fbeta(1.0), 4),
            "f2": round(self.fbeta(2.0), 4),
        }


CountsByEntity = dict[str, Counts]


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def fbeta(precision: float, recall: float, beta: float) -> float:
    """F-beta; beta > 1 weighs recall more (F2: a missed entity costs more than a false alarm)."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator else 0.0


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def overlap_len(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def tokenize(text: str) -> list[Region]:
    """Word and punctuation tokens as character regions (whitespace is never a token)."""
    return [match.span() for match in TOKEN_RE.finditer(text)]


def trim_span(text: str, start: int, end: int) -> Region:
    """The region without leading/trailing whitespace (empty regions stay where they are)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _counts(table: CountsByEntity, entity: str) -> Counts:
    if entity not in table:
        table[entity] = Counts()
    return table[entity]


def _best_prediction(start: int, end: int, predictions: Sequence[Prediction]) -> Prediction | None:
    covering = [p for p in predictions if overlaps(start, end, p.start, p.end)]
    if not covering:
        return None
    # Highest score wins; ties go to the longer span, then the entity name (deterministic).
    return max(covering, key=lambda p: (p.score, p.end - p.start, p.entity))


def token_counts(
    tokens: Sequence[Region],
    gold: Sequence[Span],
    predictions: Sequence[Prediction],
    dont_care: Sequence[Region] = (),
) -> CountsByEntity:
    """Token-level counts per entity type (see the module docstring)."""
    table: CountsByEntity = {}
    for start, end in tokens:
        gold_type = "O"
        best_overlap = 0
        for g_start, g_end, g_type in gold:
            size = overlap_len(start, end, g_start, g_end)
            if size > best_overlap:
                gold_type, best_overlap = g_type, size
        if gold_type == "O" and any(overlaps(start, end, s, e) for s, e in dont_care):
            continue
        best = _best_prediction(start, end, predictions)
        pred_type = best.entity if best is not None else "O"
        if gold_type == pred_type:
            if gold_type != "O":
                _counts(table, gold_type).tp += 1
            continue
        if gold_type != "O":
            _counts(table, gold_type).fn += 1
        if pred_type != "O":
            _counts(table, pred_type).fp += 1
    return table


def _unique(predictions: Iterable[Prediction]) -> list[Prediction]:
    """One prediction per (start, end, entity), the best-scored; in text order."""
    best: dict[Span, Prediction] = {}
    for p in predictions:
        key = (p.start, p.end, p.entity)
        if key not in best or p.score > best[key].score:
            best[key] = p
    return sorted(best.values(), key=lambda p: (p.start, -p.end, p.entity))


def _span_counts(
    gold: Sequence[Span], predictions: Sequence[Prediction], dont_care: Sequence[Region], exact: bool
) -> CountsByEntity:
    table: CountsByEntity = {}
    for _, _, g_type in gold:
        _counts(table, g_type)
    matched: set[int] = set()
    for p in _unique(predictions):
        if exact:
            candidates = [i for i, g in enumerate(gold) if g == (p.start, p.end, p.entity)]
        else:
            candidates = [
                i for i, (s, e, t) in enumerate(gold) if t == p.entity and overlaps(p.start, p.end, s, e)
            ]
        free = [i for i in candidates if i not in matched]
        entry = _counts(table, p.entity)
        if free:
            chosen = max(free, key=lambda i: (overlap_len(p.start, p.end, gold[i][0], gold[i][1]), -i))
            matched.add(chosen)
            entry.tp += 1
        elif candidates or any(overlaps(p.start, p.end, s, e) for s, e in dont_care):
            entry.ignored += 1
        else:
            entry.fp += 1
    for index, (_, _, g_type) in enumerate(gold):
        if index not in matched:
            table[g_type].fn += 1
    return table


def loose_span_counts(
    gold: Sequence[Span], predictions: Sequence[Prediction], dont_care: Sequence[Region] = ()
) -> CountsByEntity:
    """Span-level counts where any same-type overlap matches (see the module docstring)."""
    return _span_counts(gold, predictions, dont_care, exact=False)


def exact_span_counts(
    gold: Sequence[Span], predictions: Sequence[Prediction], dont_care: Sequence[Region] = ()
) -> CountsByEntity:
    """Span-level counts where only an identical (start, end, type) matches."""
    return _span_counts(gold, predictions, dont_care, exact=True)


def merge(into: CountsByEntity, counts: Mapping[str, Counts]) -> CountsByEntity:
    """Add per-entity counts (one sample's) into a running total; returns `into`."""
    for entity, entry in counts.items():
        _counts(into, entity).add(entry)
    return into


def micro(counts: Mapping[str, Counts]) -> Counts:
    """Overall counts: the per-entity counts summed (micro-average)."""
    total = Counts()
    for entry in counts.values():
        total.add(entry)
    return total


def summarize(counts: Mapping[str, Counts]) -> dict[str, Any]:
    """Per-entity and overall figures, each with its counts."""
    return {
        "per_entity": {entity: counts[entity].as_dict() for entity in sorted(counts)},
        "overall": micro(counts).as_dict(),
    }


def bio_sentences(lines: Sequence[str]) -> list[list[tuple[str, str]]]:
    """(token, tag) lists per sentence from CoNLL lines (token<TAB>tag, blank line between sentences)."""
    sentences: list[list[tuple[str, str]]] = [[]]
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if sentences[-1]:
                sentences.append([])
            continue
        token, _, tag = line.partition("\t")
        sentences[-1].append((token, tag.strip() or "O"))
    return [s for s in sentences if s]


def bio_spans(tokens: Sequence[tuple[str, str]]) -> tuple[str, list[Span]]:
    """Text (tokens joined by single spaces) and (start, end, label) spans of its B-/I- runs.
    An I- tag continues the span only after a B-/I- of the same label; otherwise it starts one."""
    parts: list[str] = []
    spans: list[Span] = []
    position, previous = 0, "O"
    for token, tag in tokens:
        start, end = position, position + len(token)
        prefix, _, label = tag.partition("-")
        if prefix in ("B", "I") and label:
            if prefix == "I" and previous == label:
                spans[-1] = (spans[-1][0], end, label)
            else:
                spans.append((start, end, label))
            previous = label
        else:
            previous = "O"
        parts.append(token)
        position = end + 1
    return " ".join(parts), spans


@dataclass(slots=True)
class Timer:
    """Per-sample latencies (seconds) and characters analyzed."""

    latencies: list[float] = field(default_factory=list)
    chars: int = 0

    def add(self, seconds: float, chars: int) -> None:
        self.latencies.append(seconds)
        self.chars += chars

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.latencies)
        return {
            "samples": len(self.latencies),
            "chars": self.chars,
            "seconds": round(total, 4),
            "chars_per_s": round(self.chars / total, 1) if total else 0.0,
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 3),
            "p95_ms": round(percentile(self.latencies, 95) * 1000, 3),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
