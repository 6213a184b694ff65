"""Issue 4 stages alone: `action: abstract` in the transform, the strategy plan (privacy_proxy.strategies),
`privacy-proxy scan` under a strategy, and the proper-noun recognizer. No proxy process here."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AUDIT_KEY, TEST_POLICY
from fake_slm_server import FakeSLMServer

from privacy_proxy.policy.loader import parse_policy
from privacy_proxy.runtime import Runtime
from privacy_proxy.scan import scan_item
from sanitizers.pseudonymize import Transformer, TransformOptions
from sanitizers.recognizers.proper_nouns import find_proper_nouns
from sanitizers.types import Action, Decision, Detection

HEALTH = ("I was diagnosed with breast cancer last month and start chemotherapy on Monday. "
          "My manager Jane Doe doesn't know yet. "
          "Can you write an email to my team from John Smith saying I'll be out of office for a few weeks?")


def runtime_for(extra: str, tmp_path: Path) -> Runtime:
    path = tmp_path / "policy.yaml"
    path.write_text(TEST_POLICY + extra)
    from privacy_proxy.policy.loader import load_policy

    return Runtime.build(load_policy(path), b"k" * 32)


# --- action: abstract ---------------------------------------------------------------------------------


def decision(text: str, entity: str, value: str, action: Action, nth: int = 0) -> Decision:
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return Decision(Detection(entity, start, start + len(value), 0.9), action, "r")


def test_transform_abstracts_and_keeps_tokens_for_the_rest() -> None:
    text = "My manager John Smith works at the University of Westminster; mail john@x.com. John Smith is kind."
    transformer = Transformer(TransformOptions(secret=b"k" * 32))
    result = transformer.apply([text], [[
        decision(text, "PERSON", "John Smith", Action.ABSTRACT),
        decision(text, "ORGANIZATION", "University of Westminster", Action.ABSTRACT),
        decision(text, "EMAIL_ADDRESS", "john@x.com", Action.PSEUDONYMIZE),
    ]])
    assert result.texts == ["My manager works at a university; mail [EMAIL_ADDRESS_1]. My manager is kind."]
    # Abstractions are not restorable; every original is still protected (leak guard).
    assert result.mapping.restorable == {"[EMAIL_ADDRESS_1]": "john@x.com"}
    assert {"John Smith", "University of Westminster"} <= result.mapping.protected
    assert result.abstracted == {"PERSON": {"person_role": 2}, "ORGANIZATION": {"organization_kind": 1}}
    assert result.actions["PERSON"] == "abstract"


def test_abstraction_never_spells_another_protected_value() -> None:
    text = "Anna from Germany moved to Berlin."
    transformer = Transformer(TransformOptions(secret=b"k" * 32))
    result = transformer.apply([text], [[
        decision(text, "LOCATION", "Germany", Action.PSEUDONYMIZE),
        decision(text, "LOCATION", "Berlin", Action.ABSTRACT),
    ]])
    assert "Germany" not in result.texts[0] and "Berlin" not in result.texts[0]


# --- the plan --------------------------------------------------------------------------------------------


def test_scan_applies_split(tmp_path: Path) -> None:
    runtime = runtime_for("\nstrategy: split\n", tmp_path)
    out = scan_item({"id": 1, "text": HEALTH}, runtime)
    assert out["decision"] == "forward" and out["strategy"] == "split" and out["subtasks"] == 1
    assert out["outbound"] == [("Can you write an email to my team from [PERSON_2] saying I'll be out of office for a "
                               "few weeks?")]
    assert out["topics"]["health"] >= 0.5
    # Entities still point into the input text.
    assert any(HEALTH[e["start"]:e["end"]] == "Jane Doe" for e in out["entities"])


def test_scan_applies_abstract_and_split_fallbacks(tmp_path: Path) -> None:
    runtime = runtime_for("\nstrategy: split\nsplit: {fallback: abstract}\n", tmp_path)
    out = scan_item({"id": 1, "text": "My manager Jane Doe doesn't know yet. I have breast cancer."}, runtime)
    assert out["strategy"] == "abstract" and out["fallback"] == ["split:nothing_to_send"]
    assert out["outbound"] == ["My manager doesn't know yet. I have breast cancer."]


@pytest.fixture
def slm_server() -> Iterator[FakeSLMServer]:
    server = FakeSLMServer().start()
    yield server
    server.stop()


def test_scan_says_local_or_block_for_local(tmp_path: Path, slm_server: FakeSLMServer) -> None:
    out = scan_item({"id": 1, "text": "hello"}, runtime_for("\nstrategy: local\n", tmp_path))
    assert out["decision"] == "block" and out["reason"] == "local_model_unavailable" and out["outbound"] == []
    with_slm = runtime_for(f"\nstrategy: local\nslm: {{backend: openai, base_url: \"{slm_server.base_url}\", "
                           "model: m}\n", tmp_path)
    out = scan_item({"id": 1, "text": "hello"}, with_slm)
    assert out["decision"] == "local" and out["outbound"] == [] and slm_server.requests == []  # nothing generated


def test_scan_routing_by_entity_blocks(tmp_path: Path) -> None:
    runtime = runtime_for("\nrouting:\n  - {id: no-ids, when: {entities: [EMPLOYEE_ID]}, strategy: block}\n", tmp_path)
    out = scan_item({"id": 1, "text": "My id is EMP-123456."}, runtime)
    assert out["decision"] == "block" and out["reason"] == "routing_block"
    assert scan_item({"id": 2, "text": "Hello there."}, runtime)["decision"] == "forward"


def test_scan_uses_the_slm_rewrite_and_rejects_leaky_ones(tmp_path: Path, slm_server: FakeSLMServer) -> None:
    runtime = runtime_for(f"\nstrategy: abstract\nabstraction: {{use_slm: true}}\nslm: {{backend: openai, "
                          f"base_url: \"{slm_server.base_url}\", model: m, timeout_s: 2}}\n", tmp_path)
    prompt = "Ask my manager Jane Doe (jane@example.com) for a day off. Please write it."
    slm_server.answer = "Write a request to a manager for a day off."
    out = scan_item({"id": 1, "text": prompt}, runtime)
    assert out["outbound"] == [slm_server.answer] and "fallback" not in out
    # The prompt the local model saw is the private one; what it writes is checked before it leaves.
    assert "Jane Doe" in json.dumps(slm_server.requests[-1])
    slm_server.answer = "Write to Jane Doe at a new address, jane@example.com."
    out = scan_item({"id": 2, "text": prompt}, runtime)
    assert out["fallback"] == ["abstract:leak"] and "Jane Doe" not in out["outbound"][0]


def test_scan_cli_reports_strategies(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(TEST_POLICY + "\nstrategy: split\n")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": HEALTH}) + "\n")
    done = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "scan", "--policy", str(policy), str(source)],
                          capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY, "PATH": ""})
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["strategy"] == "split" and "breast cancer" not in " ".join(line["outbound"])


def test_split_policy_parses_with_every_section() -> None:
    policy = parse_policy(TEST_POLICY + "\nstrategy: split\nsplit: {mode: sketch, compose: template}\n", "x.yaml")
    assert policy.split.mode == "sketch" and policy.split.compose == "template"


# --- proper nouns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "found"), [
    ("I worked at Napco National Company as Senior Compliance Officer.", ["Napco National Company"]),
    ("Slides for the Cloudflare rollout, please.", ["Cloudflare"]),
    ("I met Dr. Koushik at the office.", ["Koushik"]),
    ("Waqas is my friend.", []),  # one word at the start of a sentence: capitalized by position
    ("Please Write A Summary Of The Report.", []),  # every word is English
    ('Hashtags for this video "Fitness tips (Mitosculpt)"', ["Mitosculpt"]),  # a bracket opens a name too
    ("It has anti-inflammatory action (Altinier et al., 2007).", ["Altinier et al."]),
    ("Physical therapy names include truHealth and xDoctor.", ["truHealth", "xDoctor"]),
    ("Call showDialog when isVisible is set.", []),  # camelCase of English words only
    ("log in as initi_user, not as your_password or max_tokens", ["initi_user"]),  # snake_case likewise
    ("a social media post about a company called copart that buys cars", ["copart"]),  # a name typed lower-case
    ("帮我发封英文邮件给koushik，说明时间", ["koushik"]),  # a Latin name inside Chinese text
    ("I need unqiue keywrds and prioritized listings for my skincare blog", []),  # misspellings and inflections
    ("Sai quali sono i tempi di spedizione di questo negozio?", []),  # not English: every word looks rare
    ("a commercial for a company called tech stop, that is local", ["tech stop"]),  # the text says it is a name
    ("I was called to the bar by the so-called experts", []),
    ('creating "Lost Bubble" and the research group “Near Crisis Project” at USC',
     ["USC", "Lost Bubble", "Near Crisis Project"]),
])
def test_proper_nouns(text: str, found: list[str]) -> None:
    assert [text[d.start:d.end] for d in find_proper_nouns(text)] == found
