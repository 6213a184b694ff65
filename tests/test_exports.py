"""The public surface is deliberate: a name added to or dropped from `__all__` shows up here."""

import privacy_proxy
import sanitizers


def test_privacy_proxy_exports() -> None:
    assert set(privacy_proxy.__all__) == {
        "AuditFailure", "BadRequest", "ConfigError", "DetectionError", "LoadedPolicy", "LocalModelUnavailable",
        "NotReady", "Policy", "PolicyViolation", "ProxyError", "RestoreError", "StrategyNotSupported",
        "TransformError", "UpstreamError", "__version__", "load_policy", "parse_policy",
    }
    for name in privacy_proxy.__all__:
        assert hasattr(privacy_proxy, name), name


def test_sanitizers_exports() -> None:
    assert set(sanitizers.__all__) == {"Action", "Decision", "Detection", "Mapping"}
    for name in sanitizers.__all__:
        assert hasattr(sanitizers, name), name
