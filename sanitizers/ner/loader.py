"""Turn a policy's `detection.ner` spec into a loaded `NerModel` (or None for `none`).

    none                      no model: patterns and gazetteers only
    builtin                   the shipped tier that meets the quality targets fastest (see README)
    builtin:fast              shipped spaCy CNN model
    builtin:accurate          shipped MiniLM token classifier (ONNX Runtime, int8)
    spacy:<package-or-path>   any spaCy pipeline with an `ner` component, installed or on disk
    transformers:<path>       any Hugging Face token-classification model directory

Nothing here downloads: a model that is not on disk raises `NerUnavailable` naming what to install.
Backends are imported lazily, so a policy without NER never imports torch or onnxruntime.
"""

from __future__ import annotations

from collections.abc import Mapping

from sanitizers.ner import NerModel, NerUnavailable

# `builtin` resolves to this tier; the README's detection table gives the measurements behind it.
DEFAULT_BUILTIN_TIER = "accurate"


def load_ner(spec: str, label_map: Mapping[str, str] | None = None) -> NerModel | None:
    kind, _, argument = spec.partition(":")
    if kind == "none":
        return None
    if kind == "builtin":
        tier = argument or DEFAULT_BUILTIN_TIER
        if tier == "fast":
            from sanitizers.ner.spacy_ner import builtin_fast

            return builtin_fast()
        if tier == "accurate":
            from sanitizers.ner.onnx_ner import builtin_accurate

            return builtin_accurate()
        raise NerUnavailable(f"unknown built-in NER tier {tier!r}; use builtin:fast or builtin:accurate")
    if not argument:
        raise NerUnavailable(f"{spec!r} names no model; write {kind}:<name-or-path>")
    if kind == "spacy":
        from sanitizers.ner.spacy_ner import SpacyNer

        return SpacyNer(argument, label_map=dict(label_map or {}))
    if kind == "transformers":
        from sanitizers.ner.hf_ner import TransformersNer

        return TransformersNer(argument, label_map=dict(label_map or {}))
    raise NerUnavailable(f"unknown NER kind {kind!r}")
