"""Tests for sanitizers.detect: an offline Presidio engine, custom recognizers, chunking and the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from netguard import guard
from sanitizers.detect import (
    CustomRecognizer,
    Detector,
    DetectorConfigError,
    DetectorSettings,
    chunk_spans,
)

ROOT = Path(__file__).resolve().parent.parent

CUSTOM = (
    CustomRecognizer("employee_ids", "EMPLOYEE_ID", patterns=(("emp", r"\bEMP-\d{6}\b", 0.3),), context=("employee", "badge")),
    CustomRecognizer("test_names", "PERSON", deny_list=("John Smith", "Zoë Müller-Lüdenscheidt")),
)


@pytest.fixture(scope="module")
def detectors() -> Iterator[dict[str, Detector]]:
    """All the detectors of this module, built (and warmed up) while any non-loopback connection fails."""
    guard.install()
    with guard.capture() as attempts:
        built = {
            "main": Detector(DetectorSettings(min_score=0.5, custom=CUSTOM)),
            # Without the name gazetteer, so deny-list semantics are seen alone.
            "deny_only": Detector(DetectorSettings(min_score=0.5, custom=CUSTOM, gazetteers=False)),
            "emails": Detector(
                DetectorSettings(entities=("EMAIL_ADDRESS",), chunk_chars=1000, chunk_overlap=100, cache_size=0)
            ),
            "allow": Detector(
                DetectorSettings(min_score=0.5, allow_list=("help@corp.example.com",), custom=CUSTOM, cache_size=2)
            ),
            "restricted": Detector(DetectorSettings(min_score=0.5, entities=("PERSON", "EMPLOYEE_ID"), custom=CUSTOM)),
        }
        for detector in built.values():
            detector.warm_up()
    assert attempts == []
    yield built


def found(detector: Detector, text: str) -> list[tuple[str, str]]:
    return [(d.entity, text[d.start : d.end]) for d in detector.analyze(text)]


# --- offline -----------------------------------------------------------------------------------


def test_email_detection_uses_the_bundled_suffix_list(detectors: dict[str, Detector]) -> None:
    text = "Mail jane.doe@corp.example.org, not a@b.notatld."
    with guard.capture() as attempts:
        result = found(detectors["main"], text)
    assert attempts == []
    assert ("EMAIL_ADDRESS", "jane.doe@corp.example.org") in result
    # The top-level-domain check is real: an unknown suffix is no email address.
    assert all(value != "a@b.notatld" for _, value in result)


def test_a_fresh_process_builds_and_detects_without_network(tmp_path: Path) -> None:
    """First use of tldextract and spaCy in a new interpreter, with the guard logging any attempt."""
    log = tmp_path / "netguard.log"
    script = textwrap.dedent(
        """
        from sanitizers.detect import Detector, DetectorSettings
        detector = Detector(DetectorSettings(min_score=0.5))
        text = "write to someone@mail.example.co.uk today"
        print(sorted((d.entity, text[d.start:d.end]) for d in detector.analyze(text) if d.entity == "EMAIL_ADDRESS"))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "tests" / "netguard"),
        "PRIVACY_PROXY_NETGUARD": "1",
        "PRIVACY_PROXY_NETGUARD_LOG": str(log),
    }
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('EMAIL_ADDRESS', 'someone@mail.example.co.uk')]"
    assert not log.exists(), log.read_text()
    assert "NOT installed" not in done.stderr


@pytest.mark.parametrize(
    ("spec", "advice"),
    [
        ("spacy:en_core_web_lg", "pip install"),
        ("spacy:/nonexistent/model", "/nonexistent/model"),
        ("transformers:/nonexistent/model", "/nonexistent/model"),
        ("transformers:dslim/bert-base-NER", "dslim/bert-base-NER"),
    ],
)
def test_a_missing_ner_model_is_a_build_error_naming_the_fix(spec: str, advice: str) -> None:
    with guard.capture() as attempts:
        with pytest.raises(DetectorConfigError, match="detection.ner") as error:
            Detector(DetectorSettings(ner=spec))
    assert advice in str(error.value)
    assert attempts == []  # refused, never downloaded


# --- recognizers -------------------------------------------------------------------------------


def test_custom_pattern_needs_its_context_words(detectors: dict[str, Detector]) -> None:
    main = detectors["main"]
    assert found(main, "Ticket EMP-123456 is open.") == []
    assert found(main, "Employee EMP-123456 is on leave.") == [("EMPLOYEE_ID", "EMP-123456")]
    # Context words are matched on lemmas: "badges" counts as "badge".
    assert found(main, "Their badges: EMP-654321.") == [("EMPLOYEE_ID", "EMP-654321")]
    (detection,) = main.analyze("employee EMP-000001")
    assert detection.recognizer == "employee_ids" and 0.5 <= detection.score < 1


def test_deny_list_is_case_insensitive_and_whole_word(detectors: dict[str, Detector]) -> None:
    text = "John Smith met JOHN SMITH and zoë müller-lüdenscheidt, not John Smithson."
    persons = [value for entity, value in found(detectors["deny_only"], text) if entity == "PERSON"]
    assert persons == ["John Smith", "JOHN SMITH", "zoë müller-lüdenscheidt"]
    # The gazetteer, on top, also knows "John Smithson" is a name.
    assert "John Smithson" in [value for entity, value in found(detectors["main"], text) if entity == "PERSON"]


def test_allow_list_values_are_not_reported(detectors: dict[str, Detector]) -> None:
    text = "Write to help@corp.example.com or ann@corp.example.com."
    emails = [value for entity, value in found(detectors["allow"], text) if entity == "EMAIL_ADDRESS"]
    assert emails == ["ann@corp.example.com"]
    assert ("EMAIL_ADDRESS", "help@corp.example.com") in found(detectors["main"], text)


def test_entities_restriction(detectors: dict[str, Detector]) -> None:
    text = "John Smith, employee EMP-123456, mail john@corp.example.com, from 10.1.2.3"
    assert {entity for entity, _ in found(detectors["main"], text)} >= {"PERSON", "EMPLOYEE_ID", "EMAIL_ADDRESS", "IP_ADDRESS"}
    assert found(detectors["restricted"], text) == [("PERSON", "John Smith"), ("EMPLOYEE_ID", "EMP-123456")]


def test_detections_hold_positions_not_values(detectors: dict[str, Detector]) -> None:
    text = "Mail john@corp.example"
    for detection in detectors["main"].analyze(text):
        assert "john" not in repr(detection)


# --- chunking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "size", "overlap"), [(0, 1000, 100), (999, 1000, 100), (1000, 1000, 100),
                                                           (1001, 1000, 100), (50_000, 1000, 100), (12_345, 4000, 0),
                                                           (9_000, 200, 100)])
def test_chunk_spans_cover_the_range_with_the_overlap(length: int, size: int, overlap: int) -> None:
    spans = chunk_spans(length, size, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(0 <= end - start <= size for start, end in spans)
    for (_, prev_end), (start, end) in zip(spans, spans[1:]):
        assert start == prev_end - overlap
        assert end > prev_end
    if length <= size:
        assert spans == [(0, length)]


def _plant(text: list[str], position: int, value: str) -> tuple[int, int]:
    """Write ` value ` over the filler so that `value` starts at `position`."""
    text[position - 1 : position + len(value) + 1] = list(f" {value} ")
    return position, position + len(value)


def test_long_text_finds_every_value_once_across_chunk_edges(detectors: dict[str, Detector]) -> None:
    detector = detectors["emails"]  # chunks of 1000 characters, 100 of them shared with the next chunk
    length = 50_000
    text = list(("lorem ipsum dolor sit amet " * (length // 27 + 1))[:length])
    planted: list[tuple[int, int]] = []
    spans = chunk_spans(length, 1000, 100)
    for number, ((start, _), (_, prev_end)) in enumerate(zip(spans[1:], spans)):
        if number == 0:
            continue  # the first shared stretch is the long value's, below
        # The chunk edges fall inside the values, at every offset in turn; dots in the local part make
        # a cut one look like a shorter address ("q.public7@…" after "jonathan.").
        for edge in (start, prev_end):
            value = f"jonathan.q.public{number}@mail.example.com"
            offset = 1 + (number * 7 + (edge == prev_end) * 13) % (len(value) - 1)
            planted.append(_plant(text, edge - offset, value))
        planted.append(_plant(text, start + 40, f"mid{number}@example.org"))
    # A value exactly as long as the overlap, filling the first shared stretch [900, 1000).
    long_value = "x" * (100 - len("@example.com")) + "@example.com"
    planted.append(_plant(text, spans[1][0], long_value))
    assert planted[-1] == (spans[1][0], spans[0][1])
    joined = "".join(text)
    assert len(joined) == length

    detections = detector.analyze(joined)
    spans_found = [(d.start, d.end) for d in detections]
    assert sorted(spans_found) == sorted(planted)
    assert all(d.entity == "EMAIL_ADDRESS" for d in detections)
    for start, end in spans_found:
        value = joined[start:end]
        assert "@" in value and value[0].isalnum() and value.endswith((".com", ".org"))


def test_same_span_seen_by_two_chunks_is_reported_once_with_the_best_score() -> None:
    # The context word is in the first chunk only; the value is in both (chunks [0, 200) and [100, 300)).
    detector = Detector(
        DetectorSettings(min_score=0.2, chunk_chars=200, chunk_overlap=100, cache_size=0, custom=CUSTOM,
                         entities=("EMPLOYEE_ID",))
    )
    text = ("z " * 47 + " badge EMP-123456" + " y" * 300)[:600]
    assert text.index("badge") == 95 and text.index("EMP-") == 101
    detections = detector.analyze(text)
    assert [(d.start, d.end) for d in detections] == [(101, 111)]
    with_context, without = detector.analyze("badge EMP-123456")[0].score, detector.analyze("ref EMP-123456")[0].score
    assert without < with_context
    assert detections[0].score == with_context


# --- cache -------------------------------------------------------------------------------------


def test_cache_hit_returns_the_identical_result(detectors: dict[str, Detector]) -> None:
    detector = detectors["main"]
    text = "Cache test: mail cache.me@corp.example.com"
    hits, misses = detector.cache_hits, detector.cache_misses
    first = detector.analyze(text)
    second = detector.analyze(text)
    assert (detector.cache_hits, detector.cache_misses) == (hits + 1, misses + 1)
    assert second is first
    assert first[0].entity == "EMAIL_ADDRESS" and first[0].start == text.index("cache.me")


def test_cache_is_least_recently_used(detectors: dict[str, Detector]) -> None:
    detector = detectors["allow"]  # holds 2 segments
    a, b, c = "a@corp.example.com one", "b@corp.example.com two", "c@corp.example.com three"
    for text in (a, b, a, c):  # a is used again, so c evicts b
        detector.analyze(text)
    hits = detector.cache_hits
    detector.analyze(a)
    assert detector.cache_hits == hits + 1
    detector.analyze(b)
    assert detector.cache_hits == hits + 1


def test_blank_text_is_not_analyzed(detectors: dict[str, Detector]) -> None:
    detector = detectors["main"]
    counts = detector.cache_hits, detector.cache_misses
    assert detector.analyze("") == () and detector.analyze(" \n\t ") == ()
    assert (detector.cache_hits, detector.cache_misses) == counts


def test_each_language_gets_its_own_ner_model() -> None:
    """`ner: {en: builtin:fast, de: none}`: English text reaches the model, German text does not."""
    detector = Detector(DetectorSettings(languages=("en", "de"), ner={"en": "builtin:fast", "de": "none"},
                                         gazetteers=False, min_score=0.5, cache_size=0))
    english = "Yesterday Maria Gonzalez and her brother moved to Berlin with the whole family."
    german = "Gestern sind Maria Gonzalez und ihr Bruder mit der ganzen Familie nach Berlin gezogen."
    assert ("PERSON", "Maria Gonzalez") in found(detector, english)
    assert [entity for entity, _ in found(detector, german)] == []


def test_a_policy_may_not_name_ner_models_for_languages_it_does_not_enable() -> None:
    from privacy_proxy.errors import ConfigError
    from privacy_proxy.policy.loader import parse_policy

    with pytest.raises(ConfigError, match="detection.ner"):
        parse_policy("name: x\ndetection: {languages: [en], ner: {en: builtin, fr: none}}\n")
    policy = parse_policy("name: x\ndetection: {languages: [en, fr], ner: {en: builtin, fr: none}}\n")
    assert policy.detection.ner == {"en": "builtin", "fr": "none"}
