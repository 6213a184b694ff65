"""Long and repeated input: a document past spaCy's one-million-character limit completes, and each turn
of a chat analyzes only its new messages (the history comes from the per-segment cache)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from privacy_proxy.pipeline import Exchange, prepare_chat
from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
from privacy_proxy.runtime import Runtime
from sanitizers.detect import Detector, DetectorSettings

SENTENCE = (
    "Dear Ms. Lindqvist, thank you for your letter. Please call me at 212-555-0143 or write to "
    "tobias.berg@example.com; Maria Gonzalez from Northwind Logistics in Berlin sends her regards. "
)


def test_a_document_longer_than_spacys_limit_is_analyzed_whole() -> None:
    """1.1 million characters through the spaCy NER: chunking keeps each call small, every chunk is seen."""
    detector = Detector(DetectorSettings(ner="builtin:fast", min_score=0.5, cache_size=0, chunk_chars=20_000))
    repeats = 1_100_000 // len(SENTENCE) + 1
    text = SENTENCE * repeats
    assert len(text) > 1_000_000
    detections = detector.analyze(text)
    emails = [d for d in detections if d.entity == "EMAIL_ADDRESS"]
    assert len(emails) == repeats  # one per sentence: none lost or doubled at chunk edges
    assert all(text[d.start : d.end] == "tobias.berg@example.com" for d in emails)
    people = {text[d.start : d.end] for d in detections if d.entity == "PERSON"}
    assert {"Maria Gonzalez", "Lindqvist"} <= people
    last_sentence = len(text) - len(SENTENCE)
    assert any(d.entity == "PERSON" and d.start >= last_sentence for d in detections)


POLICY = """
name: turns
detection: {ner: none, entity_thresholds: {PHONE_NUMBER: 0.4}}
default_action: pseudonymize
"""


def test_turn_n_analyzes_only_the_new_messages() -> None:
    runtime = Runtime.build(LoadedPolicy(parse_policy(POLICY), Path("turns.yaml"), "0" * 64), b"k" * 32)
    detector = runtime.detector
    messages: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
    outbound = []
    for turn in range(1, 8):
        messages.append({"role": "user", "content": f"Turn {turn}: " + SENTENCE})
        misses_before, hits_before = detector.cache_misses, detector.cache_hits
        exchange = Exchange(request_id=f"t{turn}", route="/v1/chat/completions", runtime=runtime)
        # A fresh body per request, as the proxy parses one from each HTTP request.
        outbound.append(prepare_chat(exchange, {"model": "m", "messages": copy.deepcopy(messages)}))
        new_segments = 2  # turn 1: system + user; later turns: the previous answer + the new user message
        assert detector.cache_misses - misses_before == new_segments
        assert detector.cache_hits - hits_before == len(messages) - new_segments
        messages.append({"role": "assistant", "content": f"Answer {turn}: noted, [EMAIL_ADDRESS_1] is on file."})
    # The cache changes cost, not results: the same value gets the same token in every turn.
    assert all(b"[EMAIL_ADDRESS_1]" in body and b"tobias.berg" not in body for body in outbound)


@pytest.mark.extended
def test_seven_megabyte_document_with_the_default_policy() -> None:
    """The full-size variant (minutes on 2 cores): `pytest --extended`; figures in bench/long_input.py."""
    detector = Detector(DetectorSettings(ner="builtin", min_score=0.5, cache_size=0))
    text = (SENTENCE * (7_000_000 // len(SENTENCE) + 1))[:7_000_000]
    assert len(detector.analyze(text)) > 0
