"""The policy file's schema: strict pydantic models (unknown keys are errors, not silently ignored)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sanitizers.types import Action

ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0)
    read: float = Field(120.0, gt=0)
    write: float = Field(30.0, gt=0)
    pool: float = Field(5.0, gt=0)


class UpstreamSettings(Strict):
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    # The client's own Authorization header is dropped unless this is set (e.g. per-user keys).
    forward_client_authorization: bool = False
    timeouts: Timeouts = Timeouts()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL including the API prefix, e.g. https://api.openai.com/v1")
        return value.rstrip("/")


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # Routes under /v1 other than the scanned ones are refused unless listed here (forwarded unscanned, audited).
    passthrough_routes: list[str] = []


class PatternSpec(Strict):
    name: str
    regex: str
    score: float = Field(0.6, ge=0, le=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class RecognizerSpec(Strict):
    """A custom recognizer in Presidio's shape: regex patterns with scores, context words, a deny list."""

    name: str
    entity: str = Field(pattern=ENTITY_NAME)
    patterns: list[PatternSpec] = []
    context: list[str] = []
    deny_list: list[str] = []
    deny_list_score: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _has_something(self) -> RecognizerSpec:
        if not self.patterns and not self.deny_list:
            raise ValueError("a recognizer needs at least one pattern or a deny_list")
        return self


NER_SPEC = re.compile(r"^(none|builtin(:fast|:accurate)?|spacy:.+|transformers:.+)$")


class DetectionSettings(Strict):
    # Languages whose pattern recognizers and context words are enabled; the first is the fallback
    # when a text's language cannot be told.
    languages: list[Literal["en", "de", "fr", "es"]] = Field(["en"], min_length=1)
    # The NER model: one spec for every text, or one per language ({en: builtin, de: "spacy:de_core_news_md"}).
    # Specs: none | builtin | builtin:fast | builtin:accurate | spacy:<package-or-path> | transformers:<path>.
    ner: str | dict[str, str] = "builtin"
    # For spacy:/transformers: models, the model's labels → proxy entity names (PER: PERSON, ...).
    ner_labels: dict[str, str] = {}
    # Name gazetteers: first/last names and cue phrases ("my name is", "Dear") → PERSON; NRP word list.
    gazetteers: bool = True
    score_threshold: float = Field(0.5, ge=0, le=1)
    entity_thresholds: dict[str, float] = {}
    # Restrict detection to these entity types (empty: every type a recognizer knows).
    entities: list[str] = []
    allow_list: list[str] = []
    recognizers: list[RecognizerSpec] = []
    cache_size: int = Field(4096, ge=0)
    # Long segments are analyzed in chunks of this size with an overlap, so cost stays linear.
    chunk_chars: int = Field(4000, ge=200)
    chunk_overlap: int = Field(100, ge=0)

    @field_validator("ner")
    @classmethod
    def _known_ner(cls, value: str | dict[str, str], info: ValidationInfo) -> str | dict[str, str]:
        specs = value.values() if isinstance(value, dict) else [value]
        for spec in specs:
            if not NER_SPEC.match(spec):
                raise ValueError(
                    f"{spec!r}: must be 'none', 'builtin', 'builtin:fast', 'builtin:accurate', "
                    "'spacy:<package-or-path>' or 'transformers:<path>'"
                )
        languages = info.data.get("languages") or []
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(languages))
            if unknown:
                raise ValueError(f"languages {unknown} are not in detection.languages {languages}")
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_chunk(cls, value: int, info: ValidationInfo) -> int:
        # Chunks advance by chunk_chars - chunk_overlap; an overlap near chunk_chars makes the cost quadratic.
        chunk_chars = info.data.get("chunk_chars")
        if chunk_chars is not None and value * 2 > chunk_chars:
            raise ValueError(f"must be at most half of chunk_chars ({chunk_chars})")
        return value

    @field_validator("entity_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for entity, threshold in value.items():
            if not re.match(ENTITY_NAME, entity) or not 0 <= threshold <= 1:
                raise ValueError(f"{entity}: entity names are UPPER_CASE and thresholds lie in [0, 1]")
        return value


class Rule(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    entities: list[str]
    action: Action
    description: str = ""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "default":
            raise ValueError("'default' is reserved for default_action")
        return value

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, value: list[str]) -> list[str]:
        for entity in value:
            if entity != "*" and not re.match(ENTITY_NAME, entity):
                raise ValueError(f"{entity!r} is not an entity name (UPPER_CASE, e.g. PERSON)")
        return value


class MaskSettings(Strict):
    char: str = Field("*", min_length=1, max_length=1)
    keep_last: int = Field(4, ge=0)


class TransformSettings(Strict):
    pseudonym_style: Literal["placeholder", "surrogate"] = "placeholder"
    mask: MaskSettings = MaskSettings()
    # Replace every further case-insensitive, whole-word occurrence of a protected value in the request,
    # so a name detected once is not sent where the detector missed it.
    propagate: bool = True


class ContentSettings(Strict):
    # Image, audio and file parts cannot be scanned as text.
    non_text_parts: Literal["block", "drop", "allow"] = "block"


class AuditSettings(Strict):
    path: str = "audit/audit.jsonl"
    hmac_key_env: str = "PRIVACY_PROXY_AUDIT_KEY"
    hmac_key_file: str = "audit/audit.key"
    fsync: bool = False


class Policy(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    upstream: UpstreamSettings = UpstreamSettings()
    server: ServerSettings = ServerSettings()
    detection: DetectionSettings = DetectionSettings()
    rules: list[Rule] = []
    default_action: Action = Action.PSEUDONYMIZE
    transform: TransformSettings = TransformSettings()
    content: ContentSettings = ContentSettings()
    # closed: any fault in scanning, transforming, restoring or auditing blocks the request.
    failure_mode: Literal["closed", "open"] = "closed"
    audit: AuditSettings = AuditSettings()

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, rules: list[Rule]) -> list[Rule]:
        first_use: dict[str, int] = {}
        for index, rule in enumerate(rules):
            if rule.id in first_use:
                raise ValueError(f"rules[{index}].id {rule.id!r} is already used by rules[{first_use[rule.id]}]")
            first_use[rule.id] = index
        return rules
