"""The detection benchmark: its metric functions on hand-made cases, then a small real run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(ROOT / "bench"))

import eval_metrics as m  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_detection", ROOT / "bench" / "detection.py")
assert _spec is not None and _spec.loader is not None
detection = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = detection  # dataclasses look their module up there
_spec.loader.exec_module(detection)

P = m.Prediction


def counts(table: dict[str, m.Counts]) -> dict[str, tuple[int, int, int, int]]:
    return {entity: (c.tp, c.fp, c.fn, c.ignored) for entity, c in table.items()}


# ---------------------------------------------------------------- figures from counts


def test_figures_from_counts() -> None:
    c = m.Counts(tp=2, fp=1, fn=3)
    precision, recall = 2 / 3, 2 / 5
    assert c.precision == pytest.approx(precision)
    assert c.recall == pytest.approx(recall)
    assert c.fbeta(1) == pytest.approx(2 * precision * recall / (precision + recall))  # = 0.5
    # F2 = 5PR / (4P + R) = 5·tp / (5·tp + 4·fn + fp) = 10 / 23
    assert c.fbeta(2) == pytest.approx(10 / 23)
    assert c.as_dict()["f2"] == round(10 / 23, 4)


def test_symmetric_case_and_zero_denominators() -> None:
    c = m.Counts(tp=2, fp=1, fn=1)
    assert (c.precision, c.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert c.fbeta(2) == pytest.approx(2 / 3)  # P == R → every F-beta equals them
    empty = m.Counts()
    assert (empty.precision, empty.recall, empty.fbeta(1), empty.fbeta(2)) == (0.0, 0.0, 0.0, 0.0)
    assert m.Counts(fp=3).precision == 0.0 and m.Counts(fn=3).recall == 0.0


def test_micro_sums_entities() -> None:
    table = {"A": m.Counts(1, 2, 3), "B": m.Counts(4, 0, 1, ignored=2)}
    total = m.micro(table)
    assert (total.tp, total.fp, total.fn, total.ignored) == (5, 2, 4, 2)
    summary = m.summarize(table)
    assert summary["overall"]["precision"] == round(5 / 7, 4)
    assert summary["per_entity"]["B"]["support"] == 5


# ---------------------------------------------------------------- token level


def test_tokenize_words_and_punctuation() -> None:
    text = "Mail a@b.io, now"
    assert [text[s:e] for s, e in m.tokenize(text)] == ["Mail", "a", "@", "b", ".", "io", ",", "now"]


def test_token_counts_highest_score_wins() -> None:
    text = "Call John Smith at 555 now"
    tokens = m.tokenize(text)  # Call John Smith at 555 now
    gold = [(5, 15, "PERSON"), (19, 22, "PHONE_NUMBER")]
    predictions = [P(5, 9, "PERSON", 0.9), P(10, 18, "LOCATION", 0.6), P(10, 15, "PERSON", 0.5)]
    # John: TP PERSON; Smith: LOCATION (0.6) beats PERSON (0.5) → FN PERSON + FP LOCATION;
    # at: FP LOCATION; 555: FN PHONE_NUMBER; Call, now: O/O.
    table = m.token_counts(tokens, gold, predictions)
    assert counts(table) == {"PERSON": (1, 0, 1, 0), "LOCATION": (0, 2, 0, 0), "PHONE_NUMBER": (0, 0, 1, 0)}
    total = m.micro(table)
    assert total.precision == pytest.approx(1 / 3) and total.recall == pytest.approx(1 / 3)


def test_token_counts_dont_care() -> None:
    text = "Dr Smith is 42"
    gold = [(3, 8, "PERSON")]
    dont_care = [(0, 2), (12, 14)]  # TITLE "Dr", AGE "42"
    predictions = [P(0, 8, "PERSON", 1.0), P(12, 14, "DATE_TIME", 0.6)]
    table = m.token_counts(m.tokenize(text), gold, predictions, dont_care)
    # "Dr" and "42" are skipped: neither the PERSON on "Dr" nor the DATE_TIME on "42" is an FP.
    assert counts(table) == {"PERSON": (1, 0, 0, 0)}


# ---------------------------------------------------------------- span level


GOLD = [(0, 10, "PERSON"), (20, 26, "LOCATION")]
DONT_CARE = [(40, 50)]
PREDICTIONS = [
    P(0, 4, "PERSON"),  # overlaps the PERSON: loose TP, exact FP
    P(5, 10, "PERSON"),  # second fragment of the same PERSON: loose duplicate (ignored), exact FP
    P(20, 26, "LOCATION"),  # exact
    P(30, 33, "ORGANIZATION"),  # nothing there: FP
    P(40, 45, "PERSON"),  # in a don't-care region: ignored
]


def test_loose_overlap() -> None:
    table = m.loose_span_counts(GOLD, PREDICTIONS, DONT_CARE)
    assert counts(table) == {"PERSON": (1, 0, 0, 2), "LOCATION": (1, 0, 0, 0), "ORGANIZATION": (0, 1, 0, 0)}
    total = m.micro(table)
    assert total.precision == pytest.approx(2 / 3) and total.recall == 1.0


def test_exact_match() -> None:
    table = m.exact_span_counts(GOLD, PREDICTIONS, DONT_CARE)
    assert counts(table) == {"PERSON": (0, 2, 1, 1), "LOCATION": (1, 0, 0, 0), "ORGANIZATION": (0, 1, 0, 0)}
    total = m.micro(table)
    assert total.precision == pytest.approx(1 / 4) and total.recall == pytest.approx(1 / 2)


def test_each_gold_matched_once_and_type_must_agree() -> None:
    gold = [(0, 4, "PERSON"), (5, 9, "PERSON"), (10, 14, "LOCATION")]
    # One PERSON prediction over both names: it matches one of them (the larger overlap: the second).
    table = m.loose_span_counts(gold, [P(2, 9, "PERSON"), P(10, 14, "ORGANIZATION")])
    assert counts(table) == {"PERSON": (1, 0, 1, 0), "LOCATION": (0, 0, 1, 0), "ORGANIZATION": (0, 1, 0, 0)}


def test_identical_predictions_count_once() -> None:
    table = m.exact_span_counts([(0, 4, "PERSON")], [P(0, 4, "PERSON", 0.3), P(0, 4, "PERSON", 0.9)])
    assert counts(table) == {"PERSON": (1, 0, 0, 0)}


# ---------------------------------------------------------------- helpers and loaders


def test_percentile_and_trim() -> None:
    assert m.percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert m.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert m.percentile([], 50) == 0.0
    assert m.trim_span("  ab \n", 0, 6) == (2, 4)


def test_bio_to_sample() -> None:
    tokens = [("Hi", "O"), ("John", "B-person"), ("Doe", "I-person"), ("at", "O"), ("Apple", "B-corporation"),
              ("iPhone", "B-product"), ("Paris", "I-location")]  # fmt: skip
    sample = detection.bio_to_sample(tokens)
    assert sample.text == "Hi John Doe at Apple iPhone Paris"
    assert [(sample.text[s:e], t) for s, e, t in sample.gold] == [
        ("John Doe", "PERSON"), ("Apple", "ORGANIZATION"), ("Paris", "LOCATION")]  # fmt: skip
    assert [sample.text[s:e] for s, e in sample.dont_care] == ["iPhone"]
    assert m.bio_sentences(["a\tO", "b\tB-person", "", "", "c\tO", ""]) == [
        [("a", "O"), ("b", "B-person")], [("c", "O")]]  # fmt: skip


# ---------------------------------------------------------------- a small real run


def _check_figures(block: dict[str, Any]) -> None:
    for figures in [*block["per_entity"].values(), block["overall"]]:
        tp, fp, fn = figures["tp"], figures["fp"], figures["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f2 = 5 * precision * recall / (4 * precision + recall) if precision + recall else 0.0
        assert figures["precision"] == pytest.approx(precision, abs=1e-4)
        assert figures["recall"] == pytest.approx(recall, abs=1e-4)
        assert figures["f2"] == pytest.approx(f2, abs=1e-4)
        for key in ("precision", "recall", "f1", "f2"):
            assert 0.0 <= figures[key] <= 1.0
    for key in ("tp", "fp", "fn"):
        assert block["overall"][key] == sum(f[key] for f in block["per_entity"].values())


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")
def test_main_on_a_slice(tmp_path: Path) -> None:
    out = tmp_path / "detection.json"
    result = detection.main([
        "--data", str(DATA), "--limit", "20", "--ner", "none", "not-a-ner-spec",
        "--systems", "proxy", "presidio", "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["label_mapping"] == json.loads(json.dumps(detection.LABEL_MAPPING))
    # An NER override that cannot be built is reported, not fatal.
    assert [s["system"] for s in result["skipped"]] == ["proxy:default[ner=not-a-ner-spec]"]
    systems = ["proxy:default[ner=none]", "presidio"]
    primary_seen = 0
    for name, kinds in (("synth", ("token", "span_loose", "span_exact")), ("wnut", ("span_loose", "span_exact"))):
        dataset = result["datasets"][name]
        assert dataset["info"]["evaluated"] == 20
        assert sorted(dataset["results"]) == sorted(systems)
        for system in systems:
            entry = dataset["results"][system]
            for kind in kinds:
                _check_figures(entry[kind])
            primary_seen += entry[detection.LABEL_MAPPING[name]["primary"]]["overall"]["support"]
            speed = entry["speed"]
            assert speed["samples"] == 20 and speed["chars"] > 0
            assert speed["chars_per_s"] > 0 and 0 < speed["p50_ms"] <= speed["p95_ms"]
    assert primary_seen > 0


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")
def test_synth_split_keeps_even_templates_only() -> None:
    path = DATA / "presidio_synth" / "synth_dataset_v2.json"
    records = json.loads(path.read_text())
    dataset = detection.load_synth(path)
    even = [r for r in records if r["template_id"] % 2 == 0]
    assert dataset.info["evaluated"] == len(even) < len(records)
    assert [s.text for s in dataset.samples] == [r["full_text"] for r in even]
