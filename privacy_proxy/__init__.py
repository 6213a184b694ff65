"""privacy-proxy: a local OpenAI-compatible proxy that keeps private details on the device."""

from privacy_proxy.errors import (
    AuditFailure,
    BadRequest,
    ConfigError,
    DetectionError,
    LocalModelUnavailable,
    NotReady,
    PolicyViolation,
    ProxyError,
    RestoreError,
    StrategyNotSupported,
    TransformError,
    UpstreamError,
)
from privacy_proxy.policy.loader import LoadedPolicy, load_policy, parse_policy
from privacy_proxy.policy.model import Policy

__version__ = "0.1.0"

__all__ = [
    "AuditFailure",
    "BadRequest",
    "ConfigError",
    "DetectionError",
    "LoadedPolicy",
    "LocalModelUnavailable",
    "NotReady",
    "Policy",
    "PolicyViolation",
    "ProxyError",
    "RestoreError",
    "StrategyNotSupported",
    "TransformError",
    "UpstreamError",
    "__version__",
    "load_policy",
    "parse_policy",
]
