"""The policy file's schema: strict pydantic models (unknown keys are errors, not silently ignored)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sanitizers.types import Action

# Issue 4's sections (SLM, abstraction, topics, split, routing) are self-contained in strategy.py.
from privacy_proxy.policy.strategy import (
    AbstractionSettings,
    RoutingRule,
    SLMSettings,
    SplitSettings,
    Strategy,
    TopicSettings,
)

ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"
KEY_HASH = r"^sha256:[0-9a-f]{64}$"
SPKI_PIN = re.compile(r"^sha256//?[A-Za-z0-9+/]{43}=$")


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost` (nothing leaves the machine)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0)
    read: float = Field(120.0, gt=0)
    write: float = Field(30.0, gt=0)
    pool: float = Field(5.0, gt=0)
    # Seconds a request may wait for one of upstream.max_in_flight slots before a 503 proxy_overloaded.
    queue: float = Field(30.0, gt=0)


class UpstreamSettings(Strict):
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    # The client's own Authorization header is dropped unless this is set (e.g. per-user keys).
    forward_client_authorization: bool = False
    timeouts: Timeouts = Timeouts()
    # Requests to the upstream at once (streams count until they end); more wait in the proxy's own queue.
    max_in_flight: int = Field(256, ge=1, le=4096)
    # TLS to the upstream is always verified (see privacy_proxy/tls.py). These add to it:
    ca_bundle: str | None = None  # PEM file of CAs to trust instead of the system/certifi bundle
    pins: list[str] = []  # SPKI SHA-256 of the upstream's certificate key: "sha256/<base64>" (any one must match)
    client_cert: str | None = None  # mTLS: PEM certificate (chain) presented to the upstream
    client_key: str | None = None  # mTLS: its private key (PEM); may be inside client_cert
    client_key_password_env: str | None = None  # env var holding the key's passphrase, if it has one
    # Plain http:// is only accepted to a loopback host unless this is set; every audit record then says so.
    allow_insecure_upstream: bool = False

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL including the API prefix, e.g. https://api.openai.com/v1")
        return value.rstrip("/")

    @field_validator("pins")
    @classmethod
    def _pin_format(cls, value: list[str]) -> list[str]:
        for pin in value:
            if not SPKI_PIN.match(pin):
                raise ValueError(f"{pin!r}: a pin is 'sha256/<base64 of 32 bytes>' (privacy-proxy certs pin FILE)")
        return value

    @model_validator(mode="after")
    def _transport_security(self) -> UpstreamSettings:
        if self.base_url.startswith("http://"):
            tls_only = [name for name in ("ca_bundle", "pins", "client_cert", "client_key") if getattr(self, name)]
            if tls_only:
                raise ValueError(f"{', '.join(tls_only)} need an https:// base_url")
            if not self.allow_insecure_upstream and not is_loopback_url(self.base_url):
                raise ValueError(
                    "plain http:// to a host that is not loopback sends prompts unencrypted; use https://, "
                    "or set upstream.allow_insecure_upstream: true (every audit record will say so)"
                )
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        return self


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # Nesting of objects and arrays in a request body; deeper bodies are refused before any scan.
    max_json_depth: int = Field(64, ge=4, le=512)
    # Entries of `messages` / `input` / `prompt` in one request.
    max_messages: int = Field(4096, gt=0)
    # Seconds a client may take to send its whole body (a stalled upload gets 408 and the slot back).
    body_timeout: float = Field(30.0, gt=0)
    # Routes under /v1 other than the scanned ones are refused unless listed here (forwarded unscanned, audited).
    passthrough_routes: list[str] = []
    # HTTPS listener: PEM certificate (chain) and private key (`privacy-proxy certs init DIR` makes both).
    tls_cert: str | None = None
    tls_key: str | None = None
    # Who may read GET /metrics: auto (the admin key when access keys are on; else loopback clients, and the
    # admin key from anywhere), open (anyone who can reach the port), admin (the admin key only), off.
    metrics: Literal["auto", "open", "admin", "off"] = "auto"
    # Log lines: text, or one JSON object per line with the request id (`serve --log-format` wins).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        return self


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
    # Capitalized words no English vocabulary lists → PROPER_NOUN (high recall, low precision; off by default).
    proper_nouns: bool = False
    # Names, places, organizations and addresses in Chinese, Japanese and Korean text (plus capitalized Greek /
    # Cyrillic names and non-Latin name fields) → PERSON / LOCATION / ORGANIZATION (rule-based; off by default).
    east_asian: bool = False
    # Passwords, API keys and tokens (and the user names assigned beside them) → SECRET / USERNAME.
    secrets: bool = True

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
    # Completions prompts and embeddings inputs sent as token ids: decode them with a tiktoken encoding
    # already on disk and scan the text (detokenize; refused when none is there), refuse them, or
    # forward them unscanned (allow, audited).
    token_arrays: Literal["detokenize", "refuse", "allow"] = "detokenize"


class AuditSettings(Strict):
    path: str = "audit/audit.jsonl"
    hmac_key_env: str = "PRIVACY_PROXY_AUDIT_KEY"
    hmac_key_file: str = "audit/audit.key"
    fsync: bool = False
    # Rotation: the chain continues across files (each new file's first record names the previous one).
    rotate_bytes: int = Field(0, ge=0)  # start a new file once the current one reaches this size (0: never)
    rotate_daily: bool = False  # start a new file when the UTC day changes
    # Signed checkpoints (Ed25519 over the chain head) in <log stem>.checkpoints.jsonl; also at rotation and stop.
    checkpoint_every: int = Field(1000, ge=0)  # records between checkpoints (0: not by count)
    checkpoint_interval: float = Field(300.0, ge=0)  # seconds between checkpoints (0: not by time)
    signing_key_env: str = "PRIVACY_PROXY_AUDIT_SIGNING_KEY"
    signing_key_file: str | None = None  # default: audit-signing.key beside the log (public key: .pub)
    # Sealed originals for investigators: X25519 public key (PEM) of the auditor; off when unset.
    seal_to: str | None = None
    # false: a record that cannot be written is logged loudly and the request is served anyway.
    required: bool = True


class VaultSettings(Strict):
    """Mappings that outlive one request (stateful APIs), encrypted at rest (AES-256-GCM)."""

    backend: Literal["sqlite", "memory", "redis"] = "sqlite"
    path: str = "vault/vault.sqlite3"
    key_env: str = "PRIVACY_PROXY_VAULT_KEY"  # hex keys, comma-separated, newest last
    key_file: str = "vault/vault.key"  # one hex key per line, newest last; made (0600) when neither exists
    ttl: float = Field(7 * 86400.0, gt=0)  # seconds a record lives unless its writer says otherwise
    # backend redis (shared by replicas): the URL in redis_url_env wins (it may carry a password), else redis_url.
    redis_url: str | None = None  # redis://host:6379/0, rediss:// (TLS) or unix:///path; no password here
    redis_url_env: str = "PRIVACY_PROXY_REDIS_URL"
    redis_prefix: str = Field("privacy-proxy:vault:", min_length=1, max_length=200)
    redis_timeout: float = Field(2.0, gt=0, le=60)  # seconds to connect and per command; then fail closed

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if parts.password:
            raise ValueError("a password does not belong in the policy: put the whole URL in the env var "
                             "named by vault.redis_url_env")
        return value


class AccessKeySpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    hash: str = Field(pattern=KEY_HASH)  # sha256:<hex> of the key (privacy-proxy access new-key)
    policy: str | None = None  # another policy file for this key's requests (default: this policy)


class AccessSettings(Strict):
    """Client API keys for the proxy itself; off when neither keys nor keys_file is given."""

    keys: list[AccessKeySpec] = []
    keys_file: str | None = None  # YAML list of {name, hash, policy}; read at start and on reload
    admin_key_hash: str | None = Field(None, pattern=KEY_HASH)  # /admin/* routes; disabled when unset

    @property
    def enabled(self) -> bool:
        return bool(self.keys) or self.keys_file is not None

    @field_validator("keys")
    @classmethod
    def _unique_keys(cls, keys: list[AccessKeySpec]) -> list[AccessKeySpec]:
        for field_name in ("name", "hash"):
            seen = [getattr(key, field_name) for key in keys]
            duplicates = sorted({value for value in seen if seen.count(value) > 1})
            if duplicates:
                raise ValueError(f"duplicate key {field_name}s: {', '.join(duplicates)}")
        return keys


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
    vault: VaultSettings = VaultSettings()
    access: AccessSettings = AccessSettings()
    # Issue 4: the request-level strategy, routing by topic/entity (first match wins), and their settings.
    strategy: Strategy = "forward"
    routing: list[RoutingRule] = []
    slm: SLMSettings = SLMSettings()
    abstraction: AbstractionSettings = AbstractionSettings()
    topics: TopicSettings = TopicSettings()
    split: SplitSettings = SplitSettings()

    @model_validator(mode="after")
    def _client_keys_stay_here(self) -> Policy:
        if self.access.enabled and self.upstream.forward_client_authorization:
            raise ValueError(
                "access keys and upstream.forward_client_authorization exclude each other: "
                "the client's Authorization would carry the proxy key to the upstream"
            )
        return self

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, rules: list[Rule]) -> list[Rule]:
        first_use: dict[str, int] = {}
        for index, rule in enumerate(rules):
            if rule.id in first_use:
                raise ValueError(f"rules[{index}].id {rule.id!r} is already used by rules[{first_use[rule.id]}]")
            first_use[rule.id] = index
        return rules
