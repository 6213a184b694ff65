"""`ner: transformers:<path>` -- any local Hugging Face token-classification model directory.

The directory must hold a config.json with id2label, the weights and a *fast* tokenizer (tokenizer.json),
as written by `save_pretrained`. Nothing is ever downloaded: a hub id such as "dslim/bert-base-NER" that
is not a local directory is refused. torch and transformers are imported only when such a model is
configured (`pip install 'privacy-proxy[ml]'`).

Label names are parsed as BIO / BIOES / BILOU ("B-PER", "I-ORG", "S-LOC") or plain IO ("PER") and the
entity part is mapped to the proxy's names through sanitizers.ner.DEFAULT_LABEL_MAP, which `label_map` overrides. A
mapped value of None, "" or "O" drops the entity; an entity in neither map is kept under its upper-cased
name (an unknown label may still be private, so it is not silently discarded).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sanitizers.ner import NerSpan, NerUnavailable, label_mapping
from sanitizers.ner.onnx_ner import (
    Encoded,
    decode_spans,
    group_words,
    merge_windows,
    scheme_from_labels,
    windows,
)

INSTALL_HINT = "pip install 'privacy-proxy[ml]'"

def _resolve_dir(path: str | Path) -> Path:
    """The model directory, or NerUnavailable (never a hub lookup)."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_dir():
        hint = (" It looks like a Hugging Face hub id: models are never downloaded; save it locally with "
                "`save_pretrained` and give that directory." if "/" in str(path) and not p.is_absolute() else "")
        raise NerUnavailable(f"transformers NER model directory not found: {p}.{hint}")
    if not (p / "config.json").is_file():
        raise NerUnavailable(f"{p} holds no config.json; expected a directory written by save_pretrained")
    return p


class TransformersNer:
    """NerModel over a local token-classification checkpoint, windowed for long texts."""

    def __init__(self, path: str | Path, label_map: dict[str, str | None] | None = None, *,
                 window: int = 256, overlap: int = 64, threads: int | None = 1, batch: int = 8) -> None:
        model_dir = _resolve_dir(path)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: local_files_only is passed too
        try:
            import torch
            from transformers import AutoModelForTokenClassification, AutoTokenizer
        except ImportError as exc:
            raise NerUnavailable(f"`ner: transformers:` needs torch and transformers: {INSTALL_HINT} ({exc})") from exc
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        try:
            self._tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, use_fast=True)
            self._model = AutoModelForTokenClassification.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise NerUnavailable(f"cannot load the token classifier in {model_dir}: {exc}") from exc
        if not getattr(self._tok, "is_fast", False):
            raise NerUnavailable(f"{model_dir}: a fast tokenizer (tokenizer.json) is needed for character offsets")
        self._model.eval()
        id2label = self._model.config.id2label
        labels = [str(id2label[i]) for i in range(len(id2label))]
        mapping = label_mapping(label_map)
        self.scheme = scheme_from_labels(labels, mapping)
        self.name = f"transformers:{model_dir.name}"
        # the special tokens around one window ([CLS] x [SEP], <s> x </s>, ...), read off a probe encoding
        probe = self._tok("x", add_special_tokens=True, return_special_tokens_mask=True)
        ids, special = probe["input_ids"], probe["special_tokens_mask"]
        body = [i for i, m in enumerate(special) if not m]
        if not body:
            raise NerUnavailable(f"{model_dir}: the tokenizer encodes 'x' as special tokens only")
        self._head, self._tail = list(ids[:body[0]]), list(ids[body[-1] + 1:])
        self._prefix = len(self._head)
        n_special = len(self._head) + len(self._tail)
        max_pos = min(int(getattr(self._model.config, "max_position_embeddings", 512) or 512), 512)
        if getattr(self._model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            max_pos -= 2  # their position ids start after the padding index
        self.window = max(8, min(window, max_pos) - n_special)
        self.overlap = min(overlap, self.window // 2)
        self.batch = batch
        self._pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        self._use_tt = "token_type_ids" in getattr(self._tok, "model_input_names", ())

    def _encode(self, text: str) -> Encoded:
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        grouped = group_words([tuple(o) for o in enc["offset_mapping"]], enc.word_ids())
        return Encoded(list(enc["input_ids"]), grouped.offsets, grouped.words, grouped.word_spans)

    def token_probs(self, text: str) -> tuple[Encoded, np.ndarray]:
        torch = self._torch
        enc = self._encode(text)
        n = len(enc.ids)
        if n == 0:
            return enc, np.zeros((0, len(self.scheme.entity)), dtype=np.float32)
        spans = windows(n, self.window, self.overlap)
        probs: list[np.ndarray] = []
        for i in range(0, len(spans), self.batch):
            chunk = spans[i:i + self.batch]
            rows = [self._head + enc.ids[s:e] + self._tail for s, e in chunk]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(rows):
                ids[r, :len(row)] = torch.tensor(row)
                mask[r, :len(row)] = 1
            kwargs = {"input_ids": ids, "attention_mask": mask}
            if self._use_tt:
                kwargs["token_type_ids"] = torch.zeros_like(ids)
            with torch.inference_mode():
                p = torch.softmax(self._model(**kwargs).logits.float(), dim=-1).numpy()
            probs.extend(p[r, self._prefix:self._prefix + e - s] for r, (s, e) in enumerate(chunk))
        return enc, merge_windows(n, spans, probs)

    def predict(self, text: str) -> list[NerSpan]:
        if not text.strip():
            return []
        enc, probs = self.token_probs(text)
        return decode_spans(text, enc, probs, self.scheme)
