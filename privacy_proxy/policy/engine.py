"""The policy compiled once: entity type → (action, rule id), thresholds. `decide` is pure."""

from __future__ import annotations

from dataclasses import dataclass

from privacy_proxy.policy.model import Policy
from sanitizers.types import Action, Decision, Detection

DEFAULT_RULE_ID = "default"


@dataclass(frozen=True)
class CompiledRules:
    by_entity: dict[str, tuple[Action, str]]
    wildcard: tuple[Action, str]
    threshold: float
    entity_thresholds: dict[str, float]

    @classmethod
    def from_policy(cls, policy: Policy) -> CompiledRules:
        by_entity: dict[str, tuple[Action, str]] = {}
        wildcard: tuple[Action, str] | None = None
        # First rule naming an entity wins, like a firewall: order in the file is the precedence.
        # A "*" rule names every entity, so the rules after it can no longer decide anything.
        for rule in policy.rules:
            if "*" in rule.entities:
                wildcard = (rule.action, rule.id)
            for entity in rule.entities:
                if entity != "*":
                    by_entity.setdefault(entity, (rule.action, rule.id))
            if wildcard is not None:
                break
        return cls(
            by_entity=by_entity,
            wildcard=wildcard or (policy.default_action, DEFAULT_RULE_ID),
            threshold=policy.detection.score_threshold,
            entity_thresholds=dict(policy.detection.entity_thresholds),
        )

    def rule_for(self, entity: str) -> tuple[Action, str]:
        return self.by_entity.get(entity, self.wildcard)

    def passes_threshold(self, detection: Detection) -> bool:
        return detection.score >= self.entity_thresholds.get(detection.entity, self.threshold)

    def decide(self, detections: list[Detection]) -> list[Decision]:
        decisions = []
        for detection in detections:
            if not self.passes_threshold(detection):
                continue
            action, rule_id = self.rule_for(detection.entity)
            decisions.append(Decision(detection=detection, action=action, rule_id=rule_id))
        return decisions
