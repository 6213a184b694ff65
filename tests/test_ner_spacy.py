"""Tests for the spaCy NER tier: the SpacyNer loader, the shipped fast model, and its data pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import spacy
from spacy.training import Example as SpacyExample

from sanitizers.ner import NerSpan, NerUnavailable
from sanitizers.ner.corpus import (
    DEFAULT_DATA,
    SYNTH_EVAL_TEMPLATE,
    detokenize,
    presidio_synth,
)
from sanitizers.ner.spacy_ner import SpacyNer, builtin_fast
from sanitizers.ner.synth import generate

TRAIN = [
    ("Alice Smith lives in Paris.", [(0, 11, "PERSON"), (21, 26, "GPE")]),
    ("Bob works for Acme Corp in Berlin.", [(0, 3, "PERSON"), (14, 23, "ORG"), (27, 33, "GPE")]),
    ("Call 12345 now.", [(5, 10, "PERSON")]),  # a numeric "PERSON": SpacyNer must drop it
    ("The weather is nice today.", []),
]


def _tiny_model(path: Path) -> Path:
    """Blank English + ner trained until it memorises TRAIN (a few seconds on one core)."""
    spacy.util.fix_random_seed(0)
    random.seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    for label in ("PERSON", "GPE", "ORG"):
        ner.add_label(label)
    examples = [SpacyExample.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        random.shuffle(examples)
        nlp.update(examples, sgd=optimizer, drop=0.0)
        if all([(e.start_char, e.end_char, e.label_) for e in nlp(t).ents] == ents for t, ents in TRAIN):
            break
    nlp.to_disk(path)
    return path


def test_spacy_ner_loads_a_model_directory_and_maps_labels(tmp_path: Path) -> None:
    model = SpacyNer(str(_tiny_model(tmp_path / "tiny")))
    assert model.name == "spacy:tiny"
    text = "Bob works for Acme Corp in Berlin."
    spans = model.predict(text)
    assert all(isinstance(s, NerSpan) and 0 <= s.score <= 1 for s in spans)
    assert {(text[s.start:s.end], s.label) for s in spans} == {
        ("Bob", "PERSON"), ("Acme Corp", "ORGANIZATION"), ("Berlin", "LOCATION")}
    assert model.predict("Call 12345 now.") == []  # no letters: not a person
    assert model.predict("   ") == []
    assert model.nlp.max_length >= 10_000_000

    custom = SpacyNer(tmp_path / "tiny", label_map={"GPE": "CITY", "ORG": ""})
    labels = {(text[s.start:s.end], s.label) for s in custom.predict(text)}
    assert labels == {("Bob", "PERSON"), ("Berlin", "CITY")}


def test_missing_model_raises_ner_unavailable(tmp_path: Path) -> None:
    with pytest.raises(NerUnavailable, match="pip install en_core_web_nonexistent"):
        SpacyNer("en_core_web_nonexistent")
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(NerUnavailable, match=str(missing)):
        SpacyNer(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NerUnavailable, match="config.cfg"):
        SpacyNer(tmp_path / "empty")


def test_builtin_fast_model_finds_person_and_location() -> None:
    model = builtin_fast()
    text = "Yesterday I met Maria Gonzalez in Berlin to talk about the new project."
    found = {(text[s.start:s.end], s.label) for s in model.predict(text)}
    assert ("Maria Gonzalez", "PERSON") in found
    assert ("Berlin", "LOCATION") in found


def test_presidio_synth_split_by_template_parity(tmp_path: Path) -> None:
    records = [
        {"full_text": "Call John in Paris", "template_id": 1,
         "spans": [{"entity_type": "PERSON", "start_position": 5, "end_position": 9},
                   {"entity_type": "GPE", "start_position": 13, "end_position": 18}]},
        {"full_text": "Card 4111 at Acme", "template_id": 2,
         "spans": [{"entity_type": "CREDIT_CARD", "start_position": 5, "end_position": 9},
                   {"entity_type": "ORGANIZATION", "start_position": 13, "end_position": 17}]},
    ]
    path = tmp_path / "synth.json"
    path.write_text(json.dumps(records))
    train, evals = presidio_synth(path, "train"), presidio_synth(path, "eval")
    assert [e.spans for e in train] == [((5, 9, "PERSON"), (13, 18, "LOCATION"))]
    assert [e.spans for e in evals] == [((13, 17, "ORGANIZATION"),)]  # the credit card is not NER
    assert SYNTH_EVAL_TEMPLATE(2) and not SYNTH_EVAL_TEMPLATE(1)
    with pytest.raises(ValueError):
        presidio_synth(path, "test")

    real = DEFAULT_DATA / "presidio_synth" / "synth_dataset_v2.json"
    if real.exists():
        ids = {r["template_id"] for r in json.loads(real.read_text())}
        assert len(presidio_synth(real, "train")) + len(presidio_synth(real, "eval")) == 1500
        assert any(i % 2 == 0 for i in ids)


def test_detokenize_offsets() -> None:
    tokens = ["I", "do", "n't", "know", "(", "really", ")", ",", "@", "Bob", "said", '"', "hi", '"', "."]
    text, offsets = detokenize(tokens)
    assert text == 'I don\'t know (really), @Bob said "hi".'
    assert [text[a:b] for a, b in offsets] == tokens


def test_synth_generate_is_deterministic_and_aligned() -> None:
    first, again, other = generate(300, seed=7), generate(300, seed=7), generate(300, seed=8)
    assert first == again
    assert first != other
    labels = set()
    for ex in first:
        for start, end, label in ex.spans:
            value = ex.text[start:end]
            assert value and value == value.strip(), (ex.text, start, end)
            labels.add(label)
        assert list(ex.spans) == sorted(ex.spans)
        assert all(a[1] <= b[0] for a, b in zip(ex.spans, ex.spans[1:]))
    assert labels == {"PERSON", "LOCATION", "ORGANIZATION"}
    assert any(not ex.spans for ex in first)  # hard negatives
