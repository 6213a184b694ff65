"""The policy sections of issue 4 (privacy_proxy.policy.strategy): slm, abstraction, topics, split,
strategy and routing — defaults, located errors, and the routing decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.loader import load_policy, parse_policy
from privacy_proxy.policy.strategy import TOPICS, RoutingCondition, RoutingRule, choose_strategy
from privacy_proxy.slm import NoSLM, build_slm
from sanitizers.abstract import AbstractionOptions
from sanitizers.topics import TopicClassifier

ROOT = Path(__file__).resolve().parent.parent

FULL = """\
name: issue4
strategy: abstract
routing:
  - id: health-local
    when: {topics: [health, sexuality], min_score: 0.7}
    strategy: local
  - when: {entities: [US_SSN]}
    strategy: block
  - when: {topics: [finance]}
    strategy: split
slm:
  backend: openai
  base_url: http://127.0.0.1:11434/v1
  model: llama3.2:1b
  max_tokens: 256
  temperature: 0.2
  timeout_s: 12
abstraction:
  use_slm: true
  date_granularity: year
  location_level: region
  zip_digits: 3
  age_cap: 90
  money: round
topics:
  method: lexicon
  threshold: 0.6
  enabled: [health, finance, sexuality]
  extra_terms: {health: {long covid: 1.0}}
split:
  mode: sketch
  compose: slm
  fallback: local
  repersonalize: true
"""


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "policies").glob("*.yaml")))
def test_shipped_policies_still_load_with_defaults(name: str) -> None:
    policy = load_policy(ROOT / "policies" / name).policy
    assert policy.strategy in ("forward", "abstract", "split", "local", "block")
    assert policy.slm.backend in ("none", "transformers", "openai")


def test_defaults_keep_todays_behaviour() -> None:
    policy = parse_policy("name: t\n")
    assert policy.strategy == "forward" and policy.routing == []
    assert policy.slm.backend == "none" and policy.slm.allow_non_loopback is False
    assert policy.topics.method == "lexicon" and tuple(policy.topics.enabled) == TOPICS
    assert policy.split.mode == "direct" and policy.split.fallback == "abstract"
    assert policy.abstraction.zip_digits == 3 and policy.abstraction.age_cap == 90
    assert isinstance(build_slm(policy.slm), NoSLM)


def test_full_sections_parse_and_build() -> None:
    policy = parse_policy(FULL)
    assert policy.strategy == "abstract"
    assert [r.strategy for r in policy.routing] == ["local", "block", "split"]
    assert policy.routing[0].when.min_score == 0.7 and policy.routing[2].when.min_score == 0.5
    assert policy.slm.model == "llama3.2:1b" and policy.slm.timeout_s == 12
    slm = build_slm(policy.slm)
    assert slm.backend == "openai" and slm.max_tokens == 256 and slm.temperature == 0.2  # nothing contacted
    options = AbstractionOptions.from_settings(policy.abstraction)
    assert options.date_granularity == "year" and options.money == "round" and options.location_level == "region"
    classifier = TopicClassifier.from_settings(policy.topics)
    scores = classifier.classify("I still have long covid.")
    assert set(scores) == {"health", "finance", "sexuality"} and scores["health"] >= 0.75


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("name: t\nslm: {backend: openai, base_url: 'http://10.0.0.7:11434/v1', model: m}\n", "loopback"),
    ("name: t\nslm: {backend: openai, model: m}\n", "needs base_url"),
    ("name: t\nslm: {backend: transformers}\n", "local model directory"),
    ("name: t\nslm: {backend: llamafile}\n", "slm.backend"),
    ("name: t\nslm: {backend: none, temprature: 0}\n", "unknown field"),
    ("name: t\nstrategy: cloud\n", "strategy"),
    ("name: t\nrouting: [{when: {min_score: 0.5}, strategy: local}]\n", "names topics or entities"),
    ("name: t\nrouting: [{when: {topics: [astrology]}, strategy: local}]\n", "routing[0].when.topics[0]"),
    ("name: t\nrouting: [{when: {entities: [ssn]}, strategy: block}]\n", "not an entity name"),
    ("name: t\ntopics: {extra_terms: {health: {flu: 5}}}\n", "weight in (0, 2]"),
    ("name: t\nabstraction: {date_granularity: day}\n", "abstraction.date_granularity"),
    ("name: t\nsplit: {mode: magic}\n", "split.mode"),
])
def test_bad_sections_are_located_errors(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(yaml_text, "p.yaml")
    assert message in caught.value.message and caught.value.message.startswith("p.yaml:")


def test_non_loopback_slm_needs_the_explicit_opt_in() -> None:
    policy = parse_policy("name: t\nslm: {backend: openai, base_url: 'https://gpu-box.lan/v1', model: m, "
                          "allow_non_loopback: true}\n")
    assert policy.slm.allow_non_loopback


def test_routing_first_match_wins() -> None:
    routing = parse_policy(FULL).routing
    assert choose_strategy("abstract", routing, {"health": 0.8}) == ("local", "health-local")
    assert choose_strategy("abstract", routing, {"health": 0.6, "finance": 0.6}) == ("split", "routing[2]")
    assert choose_strategy("abstract", routing, {"finance": 0.9}, ["US_SSN"]) == ("block", "routing[1]")
    assert choose_strategy("abstract", routing, {"health": 0.69}) == ("abstract", "strategy")
    assert choose_strategy("forward", [], {"health": 1.0}) == ("forward", "strategy")
    rule = RoutingRule(when=RoutingCondition(entities=["PERSON"]), strategy="split")
    assert choose_strategy("forward", [rule], {}, {"PERSON"}) == ("split", "routing[0]")
