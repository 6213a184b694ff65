"""The ACCURATE NER tier at run time: a small BERT token classifier executed by onnxruntime.

Only `onnxruntime`, `tokenizers` and numpy are imported (no torch, no transformers), so the proxy stays
small and starts fast. The model directory (built by `sanitizers.ner.train_accurate`) holds:

  model.onnx        int8 token classifier; inputs input_ids, attention_mask, token_type_ids (int64)
  tokenizer.json    the WordPiece tokenizer (uncased: casing is fed separately, see `case_class`)
  labels.json       {"labels": ["O", "B-PERSON", ...], "window": ..., "overlap": ...}

The decoding helpers here (`LabelScheme`, `decode_spans`) are shared with the `transformers:` loader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sanitizers.ner import NerSpan, NerUnavailable

MODEL_FILES = ("model.onnx", "tokenizer.json", "labels.json")
BUILTIN_DIR = Path(__file__).resolve().parent / "models" / "accurate"

# The base encoder is uncased, so casing -- the strongest cue for names -- would be lost. We feed it
# through token_type_ids (4 learned vectors) instead: 0 lower/no letters, 1 Title, 2 ALLCAPS, 3 mIxed.
CASE_TYPES = 4


def case_class(word: str) -> int:
    """Casing class of a word, for token_type_ids."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return 0
    if letters[0].isupper():
        if len(letters) > 1 and all(c.isupper() for c in letters):
            return 2
        return 1
    return 3 if any(c.isupper() for c in letters) else 0


@dataclass(frozen=True, slots=True)
class Encoded:
    """A whole text as sub-tokens (no special tokens), with the word each belongs to."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    words: list[int]  # index into word_spans, one per sub-token
    word_spans: list[tuple[int, int]]  # char span of each pre-tokenizer word


def group_words(offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> Encoded:
    """Turn a tokenizer's word ids (None = no word) into dense word indices and word char spans."""
    words: list[int] = []
    spans: list[tuple[int, int]] = []
    last: int | None = None
    for (start, end), wid in zip(offsets, word_ids):
        if wid is None or wid != last or not spans:
            spans.append((start, end))
        else:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        last = wid
        words.append(len(spans) - 1)
    return Encoded([], list(offsets), words, spans)


def encode_text(tokenizer, text: str) -> tuple[Encoded, list[int]]:
    """Sub-tokens of `text` and their casing type ids (the same function is used in training)."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    grouped = group_words(enc.offsets, enc.word_ids)
    word_case = [case_class(text[s:e]) for s, e in grouped.word_spans]
    types = [word_case[w] for w in grouped.words]
    return Encoded(list(enc.ids), grouped.offsets, grouped.words, grouped.word_spans), types


def windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open sub-token windows of at most `size` covering 0..n, consecutive ones sharing `overlap`."""
    if n <= size:
        return [(0, n)]
    step = max(1, size - overlap)
    starts = list(range(0, n - size, step)) + [n - size]
    return [(s, s + size) for s in starts]


def merge_windows(n: int, spans: Sequence[tuple[int, int]], probs: Sequence[np.ndarray]) -> np.ndarray:
    """Per sub-token probabilities, each taken from the window where the token is most central."""
    out = np.zeros((n, probs[0].shape[-1]), dtype=np.float32)
    best = np.full(n, -1, dtype=np.int64)
    for (s, e), p in zip(spans, probs):
        idx = np.arange(s, e)
        margin = np.minimum(idx - s, e - 1 - idx)  # distance to the window edge: more context is better
        take = margin > best[s:e]
        out[idx[take]] = p[take]
        best[s:e] = np.where(take, margin, best[s:e])
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class LabelScheme:
    """Model label index -> (starts a span?, proxy entity or None for 'outside')."""

    begin: tuple[bool, ...]
    entity: tuple[str | None, ...]

    @property
    def entities(self) -> list[str]:
        return sorted({e for e in self.entity if e})


_PREFIXED = re.compile(r"^([BIESLU])[-_](.+)$")


def parse_label(raw: str) -> tuple[bool, str | None]:
    """'B-PER' -> (True, 'PER'); 'I-PER'/'E-PER' -> (False, 'PER'); 'PER' (IO scheme) -> (False, 'PER')."""
    if raw.upper() in ("O", "OUTSIDE", "NONE"):
        return False, None
    m = _PREFIXED.match(raw)
    if m:
        return m.group(1) in "BSU", m.group(2)
    return False, raw


def scheme_from_labels(labels: Sequence[str], mapping: dict[str, str | None] | None = None) -> LabelScheme:
    """Build the scheme; `mapping` (upper-case keys) renames entity names; None, "" or "O" drops one."""
    begin: list[bool] = []
    entity: list[str | None] = []
    for raw in labels:
        b, ent = parse_label(raw)
        if ent is not None and mapping is not None:
            ent = mapping.get(ent.upper(), ent.upper())
            ent = None if ent in (None, "", "O") else ent
        begin.append(b)
        entity.append(ent)
    return LabelScheme(tuple(begin), tuple(entity))


# Abbreviations whose final '.' belongs to a name ("Acme Inc.", "Main St."); a sentence's final
# period after "Tom" does not.
_ABBREVIATIONS = frozenset(
    "jr sr st dr mr mrs ms mt ft co inc ltd corp llc plc bros ave rd blvd ln hwy apt no dept univ".split()
)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Strip surrounding spaces/punctuation, keeping a '.' that ends an abbreviation ("Jr.", "Inc.")."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        if text[end - 1] == "." and end - start > 1:
            word = re.search(r"(\w+)\.$", text[start:end])
            if word and word.group(1).lower() in _ABBREVIATIONS:
                break
        end -= 1
    return start, end


def decode_spans(text: str, enc: Encoded, probs: np.ndarray, scheme: LabelScheme) -> list[NerSpan]:
    """Word-level BIO decoding of per-sub-token probabilities into character spans.

    A word's entity is the argmax of its sub-tokens' mean probability mass per entity (B and I summed,
    'outside' labels pooled); it opens a new span when its first sub-token prefers B over I, or when the
    entity changes. The score of a span is the mean probability of its entity over its sub-tokens.
    """
    if len(enc.words) == 0:
        return []
    ents = scheme.entities
    ent_idx = {e: i + 1 for i, e in enumerate(ents)}
    col = np.array([ent_idx.get(e, 0) if e else 0 for e in scheme.entity])
    # mass[t, k]: k = 0 outside, k >= 1 entity; begin_mass/inside_mass split each entity by prefix
    proj = np.zeros((len(col), len(ents) + 1), dtype=np.float32)
    proj[np.arange(len(col)), col] = 1.0
    is_b = np.array(scheme.begin, dtype=np.float32)[:, None] * (col[:, None] > 0)
    mass = probs @ proj
    b_mass = probs @ (proj * is_b)
    words = np.asarray(enc.words)
    n_words = int(words.max()) + 1
    counts = np.bincount(words, minlength=n_words).astype(np.float32)
    word_mass = np.zeros((n_words, mass.shape[1]), dtype=np.float32)
    np.add.at(word_mass, words, mass)
    word_mass /= counts[:, None]
    first = np.searchsorted(words, np.arange(n_words))  # words are non-decreasing
    word_tag = word_mass.argmax(axis=1)

    spans: list[NerSpan] = []
    cur: list | None = None  # [entity column, first word, last word]

    def close() -> None:
        if cur is None:
            return
        k, w0, w1 = cur
        start, end = _trim(text, enc.word_spans[w0][0], enc.word_spans[w1][1])
        label = ents[k - 1]
        if start >= end or (label == "PERSON" and not any(c.isalpha() for c in text[start:end])):
            return
        toks = (words >= w0) & (words <= w1)
        spans.append(NerSpan(label, start, end, float(mass[toks, k].mean())))

    for w in range(n_words):
        k = int(word_tag[w])
        if k == 0:
            close()
            cur = None
            continue
        t = first[w]
        starts_new = b_mass[t, k] > mass[t, k] - b_mass[t, k]
        if cur is not None and cur[0] == k and not starts_new:
            cur[2] = w
        else:
            close()
            cur = [k, w, w]
    close()
    return spans


class OnnxNer:
    """NerModel backed by an exported token classifier; `threads` bounds onnxruntime's intra-op pool."""

    def __init__(self, model_dir: str | Path, *, threads: int = 1, name: str = "ner-accurate",
                 window: int | None = None, overlap: int | None = None, batch: int = 8) -> None:
        d = Path(model_dir)
        missing = [f for f in MODEL_FILES if not (d / f).is_file()]
        if missing:
            raise NerUnavailable(f"NER model directory {d} lacks {', '.join(missing)}; build it with "
                                 f"`python -m sanitizers.ner.train_accurate --out {d}`")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - both are core dependencies
            raise NerUnavailable(f"the accurate NER tier needs onnxruntime and tokenizers ({exc})") from exc
        meta = json.loads((d / "labels.json").read_text(encoding="utf-8"))
        self.name = name
        self.scheme = scheme_from_labels(meta["labels"])
        self.window = int(window or meta.get("window", 256)) - 2  # room for [CLS] and [SEP]
        self.overlap = int(overlap if overlap is not None else meta.get("overlap", 64))
        self.batch = batch
        self._tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        self._cls = self._tok.token_to_id("[CLS]")
        self._sep = self._tok.token_to_id("[SEP]")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._sess = ort.InferenceSession(str(d / "model.onnx"), so, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._sess.get_inputs()}

    def token_probs(self, text: str) -> tuple[Encoded, np.ndarray]:
        """Sub-tokens of `text` and their label probabilities (windows merged)."""
        enc, types = encode_text(self._tok, text)
        n = len(enc.ids)
        if n == 0:
            return enc, np.zeros((0, len(self.scheme.entity)), dtype=np.float32)
        spans = windows(n, self.window, self.overlap)
        probs: list[np.ndarray] = []
        for i in range(0, len(spans), self.batch):  # bounded batches: attention memory grows with each
            chunk = spans[i:i + self.batch]
            width = max(e - s for s, e in chunk) + 2
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            tt = np.zeros_like(ids)
            for r, (s, e) in enumerate(chunk):
                ids[r, :e - s + 2] = [self._cls, *enc.ids[s:e], self._sep]
                tt[r, 1:e - s + 1] = types[s:e]
                mask[r, :e - s + 2] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
            logits = self._sess.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            probs.extend(softmax(logits[r, 1:e - s + 1]) for r, (s, e) in enumerate(chunk))
        return enc, merge_windows(n, spans, probs)

    def predict(self, text: str) -> list[NerSpan]:
        if not text.strip():
            return []
        enc, probs = self.token_probs(text)
        return decode_spans(text, enc, probs, self.scheme)


def builtin_accurate(threads: int = 1) -> OnnxNer:
    """The shipped accurate tier (sanitizers/ner/models/accurate/)."""
    if not BUILTIN_DIR.is_dir():
        raise NerUnavailable(f"the accurate NER model is missing ({BUILTIN_DIR}); build it with "
                             "`python -m sanitizers.ner.train_accurate --out sanitizers/ner/models/accurate`")
    return OnnxNer(BUILTIN_DIR, threads=threads)
