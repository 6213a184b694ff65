"""Exceptions of the proxy, and their OpenAI-shaped rendering.

    ProxyError
    ├── ConfigError          a policy or setting is invalid (start-up, reload, `policy validate`)
    ├── BadRequest           the client's body is malformed or not allowed (400, 404, 413, 415)
    ├── PolicyViolation      the policy blocks the request (403, code pii_blocked)
    │   ├── LocalModelUnavailable   the strategy is local but no SLM is configured (422)
    │   └── StrategyNotSupported    the strategy cannot serve this route (422)
    ├── DetectionError       a detector failed (blocks: fail closed)
    ├── TransformError       rewriting the request failed (blocks)
    ├── RestoreError         restoring the answer failed (blocks)
    ├── AuditFailure         the decision could not be audited (blocks)
    ├── VaultFailure         a conversation's mapping could not be stored or read (blocks)
    ├── NotReady             the proxy is still loading its policy and detectors (503, retry)
    ├── Overloaded           too many requests already wait for the upstream (503, retry)
    └── UpstreamError        the upstream is unreachable or answered garbage (502/504)

Messages never contain raw values: they name entity types, fields and routes only.
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    status = 500
    error_type = "server_error"
    code = "proxy_error"
    # The openai SDK retries 408/409/429/5xx; a block must not be retried.
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "true" if self.retryable else "false"}


class ConfigError(ProxyError):
    code = "invalid_policy"


class BadRequest(ProxyError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)
        self.status = status


class PolicyViolation(ProxyError):
    status = 403
    error_type = "invalid_request_error"
    code = "pii_blocked"

    def __init__(self, message: str, *, entities: list[str] | None = None, reason: str = "policy") -> None:
        super().__init__(message)
        self.entities = sorted(set(entities or []))
        self.reason = reason


class LocalModelUnavailable(PolicyViolation):
    """`strategy: local` (or a fallback to it) with `slm.backend: none`: nothing may leave, and nothing
    on the device can answer. A configuration matter, so the client must not retry."""

    status = 422
    code = "local_model_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="local_model_unavailable")


class StrategyNotSupported(PolicyViolation):
    status = 422
    code = "strategy_not_supported"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="strategy_not_supported")


class DetectionError(ProxyError):
    status = 503
    code = "detection_failed"


class TransformError(ProxyError):
    status = 503
    code = "transform_failed"


class RestoreError(ProxyError):
    status = 502
    code = "restore_failed"


class AuditFailure(ProxyError):
    status = 503
    code = "audit_unavailable"


class VaultFailure(ProxyError):
    status = 503
    code = "vault_unavailable"


class NotReady(ProxyError):
    status = 503
    code = "not_ready"
    retryable = True


class Overloaded(ProxyError):
    status = 503
    code = "proxy_overloaded"
    retryable = True

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "retry-after": "1"}


class UpstreamError(ProxyError):
    status = 502
    error_type = "upstream_error"
    code = "upstream_unavailable"
    retryable = True


def fault_kind(exc: BaseException) -> str:
    """A short, value-free name of a failure for the audit log."""
    return exc.code if isinstance(exc, ProxyError) else type(exc).__name__
