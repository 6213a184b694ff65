"""Exceptions of the proxy, and their OpenAI-shaped rendering.

    ProxyError
    ├── ConfigError          a policy or setting is invalid (start-up, reload, `policy validate`)
    ├── BadRequest           the client's body is malformed or not allowed (400, 404, 413, 415)
    ├── PolicyViolation      the policy blocks the request (403, code pii_blocked)
    ├── DetectionError       a detector failed (blocks: fail closed)
    ├── TransformError       rewriting the request failed (blocks)
    ├── RestoreError         restoring the answer failed (blocks)
    ├── AuditFailure         the decision could not be audited (blocks)
    ├── VaultFailure         a conversation's mapping could not be stored or read (blocks)
    ├── NotReady             the proxy is still loading its policy and detectors (503, retry)
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


class UpstreamError(ProxyError):
    status = 502
    error_type = "upstream_error"
    code = "upstream_unavailable"
    retryable = True


def fault_kind(exc: BaseException) -> str:
    """A short, value-free name of a failure for the audit log."""
    return exc.code if isinstance(exc, ProxyError) else type(exc).__name__
