"""Tests for `privacy-proxy scan` (privacy_proxy.scan): the JSONL contract of DESIGN.md, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
from privacy_proxy.runtime import Runtime
from privacy_proxy.scan import scan_lines

ROOT = Path(__file__).resolve().parent.parent

POLICY = r"""
name: scan-test
detection:
  ner: none
  gazetteers: false  # names come from the deny list only, so the trace is exact
  score_threshold: 0.5
  entity_thresholds: {EMPLOYEE_ID: 0.8}
  recognizers:
    - {name: names, entity: PERSON, deny_list: ["Jane Doe", "Bob Stone"]}
    - name: badges
      entity: BADGE_ID
      patterns: [{name: badge, regex: "\\bBDG-\\d{4}\\b", score: 0.9}]
    - name: employee_ids
      entity: EMPLOYEE_ID
      patterns: [{name: emp, regex: "\\bEMP-\\d{6}\\b", score: 0.6}]
rules:
  - {id: block-cards, entities: [CREDIT_CARD], action: block}
  - {id: allow-links, entities: [URL, DATE_TIME], action: allow}
  - {id: people, entities: [PERSON, EMAIL_ADDRESS, BADGE_ID], action: pseudonymize}
default_action: redact
"""


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    loaded = LoadedPolicy(parse_policy(POLICY), Path("scan-test.yaml"), "0" * 64)
    return Runtime.build(loaded, secret=b"k" * 32)


def scan(runtime: Runtime, *items: Any, explain: bool = False) -> list[dict[str, Any]]:
    lines = [item if isinstance(item, str) else json.dumps(item) for item in items]
    return list(scan_lines(lines, runtime, explain=explain))


def test_text_line_contract(runtime: Runtime) -> None:
    text = "Jane Doe (jane.doe@corp.example.com) from 10.0.0.1, badge BDG-1234, see https://example.com"
    (out,) = scan(runtime, {"id": "t1", "text": text})
    assert set(out) == {"id", "decision", "outbound", "entities"}
    assert out["id"] == "t1" and out["decision"] == "forward"
    assert out["outbound"] == [
        "[PERSON_1] ([EMAIL_ADDRESS_1]) from [IP_ADDRESS], badge [BADGE_ID_1], see https://example.com"
    ]
    values = {(e["type"], text[e["start"] : e["end"]], e["action"]) for e in out["entities"]}
    assert values == {
        ("PERSON", "Jane Doe", "pseudonymize"),
        ("EMAIL_ADDRESS", "jane.doe@corp.example.com", "pseudonymize"),
        ("IP_ADDRESS", "10.0.0.1", "redact"),
        ("BADGE_ID", "BDG-1234", "pseudonymize"),
        ("URL", "https://example.com", "allow"),
    }
    for entity in out["entities"]:
        assert set(entity) == {"type", "start", "end", "score", "action"}
        assert 0 < entity["score"] <= 1
    assert [e["start"] for e in out["entities"]] == sorted(e["start"] for e in out["entities"])
    # Nothing protected is in what would leave.
    for value in ("Jane Doe", "jane.doe@", "10.0.0.1", "BDG-1234"):
        assert value not in out["outbound"][0]


def test_messages_line_gives_segment_paths(runtime: Runtime) -> None:
    messages = [
        {"role": "system", "content": "Help Bob Stone."},
        {"role": "user", "content": [{"type": "text", "text": "I am Jane Doe"}]},
        {"role": "assistant", "content": "Hello bob stone"},
    ]
    (out,) = scan(runtime, {"id": 7, "messages": messages})
    assert out["decision"] == "forward"
    assert out["outbound"] == ["Help [PERSON_1].", "I am [PERSON_2]", "Hello [PERSON_1]"]
    texts = {"messages[0].content": "Help Bob Stone.", "messages[1].content[0].text": "I am Jane Doe",
             "messages[2].content": "Hello bob stone"}
    found = [(e["segment"], texts[e["segment"]][e["start"] : e["end"]]) for e in out["entities"]]
    assert found == [
        ("messages[0].content", "Bob Stone"),
        ("messages[1].content[0].text", "Jane Doe"),
        ("messages[2].content", "bob stone"),
    ]


def test_a_blocked_entity_blocks_the_line_with_nothing_outbound(runtime: Runtime) -> None:
    text = "Jane Doe pays with 4111 1111 1111 1111"
    (out,) = scan(runtime, {"id": "b", "text": text})
    assert out["decision"] == "block"
    assert out["outbound"] == []
    assert out["blocked"] == ["CREDIT_CARD"]
    card = next(e for e in out["entities"] if e["type"] == "CREDIT_CARD")
    assert text[card["start"] : card["end"]] == "4111 1111 1111 1111" and card["action"] == "block"
    assert "4111" not in json.dumps({k: v for k, v in out.items() if k != "entities"})


def test_bad_lines_give_a_block_line_and_processing_continues(runtime: Runtime) -> None:
    out = scan(runtime, "{not json", json.dumps([1, 2]), {"id": "x"}, "", {"id": "ok", "text": "Hi Jane Doe"},
               {"id": "img", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
               {"id": "bad-role", "messages": [{"content": "Jane Doe"}]})
    assert [o["id"] for o in out] == [None, None, "x", "ok", "img", "bad-role"]  # the blank line gives none
    assert out[0] == {"id": None, "decision": "block", "outbound": [], "entities": [], "error": "line 1 is not valid JSON"}
    for bad in out[1:3] + out[4:]:
        assert bad["decision"] == "block" and bad["outbound"] == [] and bad["error"]
    assert out[3]["decision"] == "forward" and out[3]["outbound"] == ["Hi [PERSON_1]"]
    assert "Jane" not in out[5]["error"]


def test_explain_adds_a_trace_with_rules_and_outcomes(runtime: Runtime) -> None:
    # "bob  stone" (two spaces) escapes the deny list; propagation protects it. The allowed link holds a
    # badge id: the protective action wins the overlap.
    text = "Bob Stone <bob@corp.example.com> employee EMP-123456, later bob  stone, see https://hr.example.com/BDG-1234"
    (out,) = scan(runtime, {"id": "e", "text": text}, explain=True)
    trace = out["trace"]
    steps = {(s["type"], text[s["start"] : s["end"]], s["rule"], s["outcome"]) for s in trace}
    assert ("PERSON", "Bob Stone", "people", "applied") in steps
    assert ("EMAIL_ADDRESS", "bob@corp.example.com", "people", "applied") in steps
    assert ("EMPLOYEE_ID", "EMP-123456", "default", "below_threshold") in steps
    assert ("PERSON", "bob  stone", "propagation", "applied") in steps
    overlapped = [s for s in trace if s["outcome"] == "overlapped"]
    assert overlapped and all(s["type"] == "URL" and s["rule"] == "allow-links" for s in overlapped)
    below = next(s for s in trace if s["outcome"] == "below_threshold")
    assert below["threshold"] == 0.8 and below["score"] < 0.8 and below["recognizer"] == "employee_ids"
    assert out["outbound"] == [
        "[PERSON_1] <[EMAIL_ADDRESS_1]> employee EMP-123456, later [PERSON_1], see https://hr.example.com/[BADGE_ID_1]"
    ]
    # Without --explain there is no trace.
    assert "trace" not in scan(runtime, {"id": "e", "text": text})[0]


def test_scan_command_reads_stdin_and_writes_one_line_per_input(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    lines = [
        {"id": 1, "text": "Mail Jane Doe at jane@corp.example.com"},
        "not json",
        {"id": 3, "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]},
    ]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    netguard_log = tmp_path / "netguard.log"
    env = {
        **os.environ,
        "PRIVACY_PROXY_AUDIT_KEY": "ab" * 32,
        "PYTHONPATH": str(ROOT / "tests" / "netguard"),
        "PRIVACY_PROXY_NETGUARD": "1",
        "PRIVACY_PROXY_NETGUARD_LOG": str(netguard_log),
    }
    done = subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "scan", "--policy", str(policy)],
        input=stdin, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 3
    assert out[0]["id"] == 1 and out[0]["decision"] == "forward"
    assert out[0]["outbound"] == ["Mail [PERSON_1] at [EMAIL_ADDRESS_1]"]
    assert out[1]["decision"] == "block" and "error" in out[1]
    assert out[2]["id"] == 3 and out[2]["decision"] == "block" and out[2]["outbound"] == []
    assert not netguard_log.exists()
    assert not (tmp_path / "audit").exists()  # the key came from the environment; no key file was made
    assert "Jane" not in done.stderr
