"""The `transformers:` NER loader and the ONNX accurate tier, on a tiny model built here (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sanitizers.ner import NerSpan, NerUnavailable
from sanitizers.ner.onnx_ner import (
    BUILTIN_DIR,
    OnnxNer,
    builtin_accurate,
    case_class,
    windows,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "maria", "gonzalez", "lives", "in", "madrid", "and",
         "works", "at", "acme", ".", ",", "the", "##s", "hello", "a", "-", "o", "'", "brien"]
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"]
TEXT = "Maria Gonzalez lives in Madrid and works at Acme."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT token classifier with a 24-word WordPiece vocabulary, saved locally."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import (
        BertConfig,
        BertForTokenClassification,
        PreTrainedTokenizerFast,
    )

    d = tmp_path_factory.mktemp("tiny_ner")
    wp = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    tok.save_pretrained(str(d))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=4,
                        id2label=dict(enumerate(LABELS)), label2id={lab: i for i, lab in enumerate(LABELS)})
    BertForTokenClassification(config).save_pretrained(str(d))
    return d


def _forced(src: Path, dst: Path, label: str) -> Path:
    """A copy of the tiny model whose classifier always answers `label` (zero weights, large bias)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(str(src), local_files_only=True)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-10.0)
        model.classifier.bias[LABELS.index(label)] = 10.0
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src), local_files_only=True).save_pretrained(str(dst))
    return dst


def _check(spans: list[NerSpan], text: str, allowed: set[str]) -> None:
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert s.label in allowed
        assert 0.0 <= s.score <= 1.0
        assert text[s.start:s.end] == text[s.start:s.end].strip()


def test_untrained_model_gives_well_formed_spans(tiny_dir: Path) -> None:
    from sanitizers.ner.hf_ner import TransformersNer

    ner = TransformersNer(str(tiny_dir))
    assert ner.name.startswith("transformers:")
    _check(ner.predict(TEXT), TEXT, {"PERSON", "LOCATION"})
    long_text = " ".join([TEXT] * 30)  # ~330 sub-tokens: several 62-token windows
    _check(ner.predict(long_text), long_text, {"PERSON", "LOCATION"})
    assert ner.predict("") == [] and ner.predict("   \n") == []


def test_forced_labels_are_mapped(tiny_dir: Path, tmp_path: Path) -> None:
    from sanitizers.ner.hf_ner import TransformersNer

    b_per = TransformersNer(str(_forced(tiny_dir, tmp_path / "bper", "B-PER")))
    spans = b_per.predict(TEXT)
    # B on every word: one PERSON per word; the final "." has no letters and is dropped
    assert [TEXT[s.start:s.end] for s in spans] == TEXT.rstrip(".").split()
    assert {s.label for s in spans} == {"PERSON"} and all(s.score > 0.99 for s in spans)

    i_loc = TransformersNer(str(_forced(tiny_dir, tmp_path / "iloc", "I-LOC")))
    (whole,) = i_loc.predict(TEXT)  # I on every word: one span, trimmed of the final "."
    assert (whole.label, TEXT[whole.start:whole.end]) == ("LOCATION", TEXT[:-1])

    misc = TransformersNer(str(_forced(tiny_dir, tmp_path / "misc", "MISC")))
    assert misc.predict(TEXT) == []  # MISC is dropped by the default map


def test_label_map_overrides(tiny_dir: Path, tmp_path: Path) -> None:
    from sanitizers.ner.hf_ner import TransformersNer

    forced = _forced(tiny_dir, tmp_path / "bper", "B-PER")
    renamed = TransformersNer(str(forced), label_map={"per": "CUSTOMER"})
    assert {s.label for s in renamed.predict(TEXT)} == {"CUSTOMER"}
    assert TransformersNer(str(forced), label_map={"PER": None}).predict(TEXT) == []
    kept = TransformersNer(str(_forced(tiny_dir, tmp_path / "misc", "MISC")), label_map={"MISC": "NRP"})
    assert {s.label for s in kept.predict(TEXT)} == {"NRP"}


def test_hub_id_and_missing_dirs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sanitizers.ner.hf_ner import TransformersNer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NerUnavailable, match="never downloaded"):
        TransformersNer("dslim/bert-base-NER")
    with pytest.raises(NerUnavailable, match="not found"):
        TransformersNer(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NerUnavailable, match="config.json"):
        TransformersNer(str(tmp_path / "empty"))
    with pytest.raises(NerUnavailable, match="lacks"):
        OnnxNer(tmp_path / "empty")


def test_onnx_export_matches_torch(tiny_dir: Path, tmp_path: Path) -> None:
    """The training script's export path, on the tiny model: fp32 ONNX equals torch, int8 runs."""
    from tokenizers import Tokenizer
    from transformers import AutoModelForTokenClassification

    from sanitizers.ner.hf_ner import TransformersNer
    from sanitizers.ner.train_accurate import export

    model = AutoModelForTokenClassification.from_pretrained(str(tiny_dir), local_files_only=True).eval()
    tok = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    export(model, tok, tmp_path / "fp32", window=64, overlap=16, quantize=False)
    assert json.loads((tmp_path / "fp32" / "labels.json").read_text())["labels"] == LABELS
    onnx_ner = OnnxNer(tmp_path / "fp32")
    hf = TransformersNer(str(tiny_dir), overlap=16, label_map={"PER": "PER", "LOC": "LOC", "MISC": "MISC"})
    text = " ".join([TEXT.lower()] * 12)  # lower case: OnnxNer's casing type ids are all 0, as in torch
    enc_a, p_a = onnx_ner.token_probs(text)
    enc_b, p_b = hf.token_probs(text)
    assert enc_a.ids == enc_b.ids and len(windows(len(enc_a.ids), onnx_ner.window, 16)) > 1
    np.testing.assert_allclose(p_a, p_b, atol=1e-4)
    assert [(a.label, a.start, a.end) for a in onnx_ner.predict(text)] == [
        (b.label, b.start, b.end) for b in hf.predict(text)]
    export(model, tok, tmp_path / "int8", window=64, overlap=16)
    _check(OnnxNer(tmp_path / "int8").predict(TEXT), TEXT, {"PER", "LOC", "MISC"})  # OnnxNer keeps raw names


def test_case_classes() -> None:
    assert [case_class(w) for w in ("maria", "Maria", "NASA", "iPhone", "42", "I")] == [0, 1, 2, 3, 0, 1]
    assert windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert windows(3, 4, 2) == [(0, 3)]


@pytest.mark.skipif(not (BUILTIN_DIR / "model.onnx").is_file(), reason="accurate model not built")
def test_shipped_accurate_model_finds_a_person() -> None:
    ner = builtin_accurate()
    text = "Please write a reference letter for Maria Gonzalez, who worked with me in Chicago."
    spans = ner.predict(text)
    people = [text[s.start:s.end] for s in spans if s.label == "PERSON"]
    assert "Maria Gonzalez" in people
    _check(spans, text, {"PERSON", "LOCATION", "ORGANIZATION"})
