"""The request path between the HTTP edges, one `Exchange` flowing through ordered stages.

    extract   body → text segments (openai/<route>.py)       BadRequest, PolicyViolation(non-text)
    detect    segment → detections (cached per segment)      DetectionError
    decide    detections → per-entity action and rule id     (pure)
    transform segments → rewritten segments + mapping         TransformError, PolicyViolation(block)
    guard     outbound body vs every protected value          PolicyViolation(leak_guard)

Any unexpected exception in a stage becomes that stage's error and blocks the request (fail closed),
unless the policy opted into `failure_mode: open`, which forwards the original body and says so in
the audit record and the log. The audit fields of an Exchange never hold a raw value.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from privacy_proxy.errors import (
    DetectionError,
    PolicyViolation,
    ProxyError,
    TransformError,
    fault_kind,
)
from privacy_proxy.openai.chat import ChatRequest
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.runtime import Runtime
from sanitizers.guard import find_leaks
from sanitizers.pseudonymize import TransformResult
from sanitizers.types import Detection, Mapping

logger = logging.getLogger("privacy_proxy.pipeline")


@dataclass
class Exchange:
    request_id: str
    route: str
    runtime: Runtime
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    stream: bool = False
    decision: str = "forward"
    reason: str | None = None
    segments: int = 0
    entity_counts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    propagated: int = 0
    mapping: Mapping = field(default_factory=Mapping)
    leak_guard: str = "not_run"
    outbound: bytes = b""
    upstream_status: int | None = None
    upstream_request_id: str | None = None
    fault: str | None = None
    client_disconnected: bool = False

    def block(self, exc: ProxyError) -> None:
        self.decision = "block"
        if isinstance(exc, PolicyViolation):
            self.reason = exc.reason
        else:
            self.reason = "fault"
            self.fault = fault_kind(exc)

    def audit_fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "route": self.route,
            "model": self.model,
            "stream": self.stream,
            "policy": {"name": self.runtime.name, "sha256": self.runtime.policy_sha256},
            "decision": self.decision,
            "strategy": "forward" if self.decision.startswith("forward") else self.decision,
            "reason": self.reason,
            "segments": self.segments,
            "entities": dict(sorted(self.entity_counts.items())),
            "actions": dict(sorted(self.actions.items())),
            "rules": dict(sorted(self.rules.items())),
            "propagated": self.propagated,
            "tokens": len(self.mapping.restorable),
            "leak_guard": self.leak_guard,
            "bytes_out": len(self.outbound),
            "upstream_status": self.upstream_status,
            "upstream_request_id": self.upstream_request_id,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "fault": self.fault,
            "client_disconnected": self.client_disconnected,
        }


@dataclass
class Sanitized:
    detections: list[tuple[Detection, ...]]
    result: TransformResult


def sanitize_texts(runtime: Runtime, texts: list[str], prior: dict[str, str] | None = None) -> Sanitized:
    """detect → decide → transform for a list of segments in conversation order (no HTTP, no guard).

    `prior` holds tokens of earlier turns kept server-side (token → original); they are reused."""
    try:
        detections = [runtime.detector.analyze(text) for text in texts]
    except ProxyError:
        raise
    except Exception as exc:
        raise DetectionError("a detector failed; the request was not forwarded") from exc
    decisions = [runtime.rules.decide(list(found)) for found in detections]
    try:
        result = runtime.transformer.apply(texts, decisions, prior)
    except Exception as exc:
        raise TransformError("rewriting the request failed; the request was not forwarded") from exc
    return Sanitized(detections, result)


def guard(exchange: Exchange, outbound_body: Any) -> None:
    leaks = find_leaks(outbound_body, exchange.mapping.protected)
    exchange.leak_guard = "hit" if leaks else "pass"
    if leaks:
        raise PolicyViolation(
            f"the leak guard found protected values still present in {len(leaks)} field(s) after rewriting; "
            "the request was not forwarded",
            entities=list(exchange.entity_counts),
            reason="leak_guard",
        )


def prepare(exchange: Exchange, request: TextRequest) -> bytes:
    """Run the stages on a parsed request of any route; returns the outbound body bytes or raises."""
    runtime = exchange.runtime
    exchange.model, exchange.stream = request.model, request.stream
    exchange.segments = len(request.segments)
    if request.non_text_paths:
        exchange.reason = f"non_text_parts_{runtime.policy.content.non_text_parts}"
    if request.unscanned:
        exchange.reason = request.unscanned
    try:
        sanitized = sanitize_texts(runtime, [segment.text for segment in request.segments], request.prior)
    except ProxyError as exc:
        if runtime.policy.failure_mode != "open" or isinstance(exc, PolicyViolation):
            raise
        logger.warning("FAIL-OPEN: %s; forwarding request %s unscanned", fault_kind(exc), exchange.request_id)
        exchange.decision, exchange.fault = "forward_unscanned", fault_kind(exc)
        exchange.outbound = serialize(request.body)
        return exchange.outbound
    result = sanitized.result
    exchange.entity_counts, exchange.actions, exchange.rules = result.entity_counts, result.actions, result.rules
    exchange.propagated, exchange.mapping = result.propagated, result.mapping
    if result.blocked_entities:
        raise PolicyViolation(
            "the policy blocks requests containing: " + ", ".join(sorted(result.blocked_entities)),
            entities=result.blocked_entities,
            reason="entity_blocked",
        )
    outbound_body = request.outbound(result.texts)
    guard(exchange, outbound_body)
    exchange.outbound = serialize(outbound_body)
    return exchange.outbound


def prepare_chat(exchange: Exchange, body: Any) -> bytes:
    """`prepare` for a chat body (kept for the scan tools and benchmarks)."""
    return prepare(exchange, ChatRequest(body, non_text_parts=exchange.runtime.policy.content.non_text_parts))


def serialize(body: Any) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate (legal as a JSON escape) is sent escaped rather than failing."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":")).encode()
