"""A policy compiled once into the objects the request path uses. Swapped whole on reload."""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.engine import CompiledRules
from privacy_proxy.policy.loader import LoadedPolicy
from privacy_proxy.policy.model import Policy
from privacy_proxy.policy.strategy import SLMSettings
from privacy_proxy.slm import SLM, NoSLM, build_slm
from sanitizers.abstract import AbstractionOptions, Abstractor
from sanitizers.detect import (
    CustomRecognizer,
    Detector,
    DetectorConfigError,
    DetectorSettings,
)
from sanitizers.pseudonymize import Transformer, TransformOptions
from sanitizers.split import SplitOptions, Splitter
from sanitizers.topics import TopicClassifier, TopicsUnavailable


def detector_settings(policy: Policy) -> DetectorSettings:
    detection = policy.detection
    thresholds = [detection.score_threshold, *detection.entity_thresholds.values()]
    return DetectorSettings(
        languages=tuple(detection.languages),
        ner=detection.ner,
        ner_labels=dict(detection.ner_labels),
        gazetteers=detection.gazetteers,
        entities=tuple(detection.entities),
        allow_list=tuple(detection.allow_list),
        min_score=min(thresholds),
        entity_thresholds=dict(detection.entity_thresholds),
        default_threshold=detection.score_threshold,
        custom=tuple(
            CustomRecognizer(
                name=spec.name,
                entity=spec.entity,
                patterns=tuple((p.name, p.regex, p.score) for p in spec.patterns),
                context=tuple(spec.context),
                deny_list=tuple(spec.deny_list),
                deny_list_score=spec.deny_list_score,
            )
            for spec in detection.recognizers
        ),
        cache_size=detection.cache_size,
        chunk_chars=detection.chunk_chars,
        chunk_overlap=detection.chunk_overlap,
        proper_nouns=detection.proper_nouns,
        east_asian=detection.east_asian,
        secrets=detection.secrets,
    )


def derive_secret(audit_key: bytes) -> bytes:
    """Keyed hashes and surrogates use a key derived from the audit key: one secret to manage."""
    return hmac.new(audit_key, b"privacy-proxy transform v1", hashlib.sha256).digest()


_SLMS: dict[SLMSettings, SLM] = {}
_SLMS_LOCK = threading.Lock()


def shared_slm(settings: SLMSettings) -> SLM:
    """The SLM backend for these settings, one per distinct `slm:` section in the process: a reload that
    keeps the section keeps the loaded weights. Building is cheap (weights load on first use)."""
    with _SLMS_LOCK:
        if settings not in _SLMS:
            _SLMS[settings] = build_slm(settings)
        return _SLMS[settings]


@dataclass(frozen=True)
class Runtime:
    policy: Policy
    policy_sha256: str
    detector: Detector
    rules: CompiledRules
    transformer: Transformer
    # Issue 4: the request strategies' parts, compiled from the policy's strategy sections.
    abstractor: Abstractor = field(default_factory=Abstractor)
    topics: TopicClassifier = field(default_factory=TopicClassifier)
    splitter: Splitter = field(default_factory=Splitter)
    slm: SLM = field(default_factory=NoSLM)

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def has_slm(self) -> bool:
        return self.slm.available

    @classmethod
    def build(cls, loaded: LoadedPolicy, secret: bytes) -> Runtime:
        policy = loaded.policy
        try:
            detector = Detector(detector_settings(policy))
        except DetectorConfigError as exc:
            raise ConfigError(f"{loaded.path}: {exc}") from None
        transform = policy.transform
        abstractor = Abstractor(AbstractionOptions.from_settings(policy.abstraction))
        transformer = Transformer(
            TransformOptions(
                pseudonym_style=transform.pseudonym_style,
                mask_char=transform.mask.char,
                mask_keep_last=transform.mask.keep_last,
                propagate=transform.propagate,
                secret=secret,
            ),
            abstractor=abstractor,
        )
        try:
            topics = TopicClassifier.from_settings(policy.topics)
        except (TopicsUnavailable, ValueError) as exc:
            raise ConfigError(f"{loaded.path}: topics: {exc}") from None
        splitter = Splitter(
            SplitOptions(mode=policy.split.mode, topic_threshold=policy.topics.threshold, fallback=policy.split.fallback),
            topics=topics,
        )
        slm = shared_slm(policy.slm)  # ConfigError for a missing model directory or a remote URL
        # Compile lazily built regexes and run the NER once at start-up, not on the first request.
        detector.warm_up()
        return cls(policy, loaded.sha256, detector, CompiledRules.from_policy(policy), transformer,
                   abstractor, topics, splitter, slm)
