"""The request path between the HTTP edges, one `Exchange` flowing through ordered stages.

    extract   body → text segments (openai/<route>.py)       BadRequest, PolicyViolation(non-text)
    detect    segment → detections (cached per segment)      DetectionError
    decide    detections → per-entity action and rule id     (pure)
    transform segments → rewritten segments + mapping         TransformError, PolicyViolation(block)
    route     topics + entities → strategy (strategies.py)    PolicyViolation(routing_block), 422s
    shape     forward: tokens; abstract: generalizations; split: the sub-task request; local: nothing
    guard     outbound body vs every protected value          PolicyViolation(leak_guard)

The SLM steps that follow (abstract rewrite, local answer, composition) are in collaborate.py.

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

from privacy_proxy import metrics, strategies
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
from privacy_proxy.strategies import Plan
from sanitizers.guard import find_leaks
from sanitizers.pseudonymize import TransformResult
from sanitizers.types import Decision, Detection, Mapping

logger = logging.getLogger("privacy_proxy.pipeline")


@dataclass
class Exchange:
    request_id: str
    route: str
    runtime: Runtime
    started: float = field(default_factory=time.perf_counter)
    started_ns: int = field(default_factory=time.time_ns)  # wall clock of `started`, for trace spans
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
    # Issue 4: the strategy that ran, the routing rule that chose it, topic scores (rounded, no text),
    # split sub-tasks sent, fallbacks taken ("stage:reason"), time spent in the local SLM, abstractions.
    strategy: str | None = None
    routing_rule: str | None = None
    topics: dict[str, float] = field(default_factory=dict)
    subtasks: int | None = None
    fallbacks: list[str] = field(default_factory=list)
    slm_ms: float | None = None
    abstracted: dict[str, dict[str, int]] = field(default_factory=dict)
    rewrite: str | None = None  # abstract: "rules" or "slm" (which rewrite of the prompt left)
    answer: str | None = None  # "restored", "composed" or "repersonalized" (by the SLM), "local"
    # Observability (metrics.py, telemetry.py): seconds per stage, and each stage's (name, start, end) in
    # perf_counter time; `observed` once it has been counted.
    timings: dict[str, float] = field(default_factory=dict)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    observed: bool = False

    def stage(self, name: str) -> _Stage:
        """``with exchange.stage("detect"): ...`` times a stage (two clock reads; nothing else)."""
        return _Stage(self, name)

    def add_time(self, name: str, start: float, end: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + (end - start)
        self.spans.append((name, start, end))

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def add_slm_time(self, seconds: float) -> None:
        self.slm_ms = round((self.slm_ms or 0.0) + seconds * 1000, 2)
        now = time.perf_counter()
        self.spans.append(("slm", now - seconds, now))
        metrics.observe_slm(str(getattr(self.runtime.slm, "backend", "custom")), seconds)

    def strategy_headers(self) -> dict[str, str]:
        """Response headers naming the strategy, the sub-tasks sent and the fallbacks taken (value-free)."""
        headers = {"x-privacy-proxy-strategy": self.strategy or "forward"}
        if self.routing_rule:
            headers["x-privacy-proxy-routing-rule"] = self.routing_rule
        if self.subtasks is not None:
            headers["x-privacy-proxy-subtasks"] = str(self.subtasks)
        if self.fallbacks:
            headers["x-privacy-proxy-fallback"] = ",".join(self.fallbacks)
        return headers

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
            "strategy": self.strategy or ("forward" if self.decision.startswith("forward") else self.decision),
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
            **self._strategy_fields(),
        }

    def _strategy_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.routing_rule is not None:
            fields["routing_rule"] = self.routing_rule
        if self.topics:
            fields["topics"] = dict(sorted(self.topics.items()))
        if self.subtasks is not None:
            fields["subtasks"] = self.subtasks
        if self.fallbacks:
            fields["fallback"] = list(self.fallbacks)
        if self.slm_ms is not None:
            fields["slm_ms"] = self.slm_ms
        if self.rewrite is not None:
            fields["rewrite"] = self.rewrite
        if self.answer is not None:
            fields["answer"] = self.answer
        if self.abstracted:
            fields["abstracted"] = {entity: dict(sorted(rules.items())) for entity, rules in sorted(self.abstracted.items())}
        return fields


class _Stage:
    __slots__ = ("exchange", "name", "start")

    def __init__(self, exchange: Exchange, name: str) -> None:
        self.exchange, self.name = exchange, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.exchange.add_time(self.name, self.start, time.perf_counter())


@dataclass
class Sanitized:
    detections: list[tuple[Detection, ...]]
    result: TransformResult
    decisions: list[list[Decision]] = field(default_factory=list)
    # perf_counter marks: detection started, detection ended (= transform started), transform ended.
    marks: tuple[float, float, float] = (0.0, 0.0, 0.0)


def sanitize_texts(runtime: Runtime, texts: list[str], prior: dict[str, str] | None = None) -> Sanitized:
    """detect → decide → transform for a list of segments in conversation order (no HTTP, no guard).

    `prior` holds tokens of earlier turns kept server-side (token → original); they are reused."""
    started = time.perf_counter()
    try:
        detections = [runtime.detector.analyze(text) for text in texts]
    except ProxyError:
        raise
    except Exception as exc:
        raise DetectionError("a detector failed; the request was not forwarded") from exc
    detected = time.perf_counter()
    decisions = [runtime.rules.decide(list(found)) for found in detections]
    try:
        result = runtime.transformer.apply(texts, decisions, prior)
    except Exception as exc:
        raise TransformError("rewriting the request failed; the request was not forwarded") from exc
    return Sanitized(detections, result, decisions, (started, detected, time.perf_counter()))


def guard(exchange: Exchange, outbound_body: Any) -> None:
    with exchange.stage("guard"):
        leaks = find_leaks(outbound_body, exchange.mapping.protected)
    exchange.leak_guard = "hit" if leaks else "pass"
    if leaks:
        raise PolicyViolation(
            f"the leak guard found protected values still present in {len(leaks)} field(s) after rewriting; "
            "the request was not forwarded",
            entities=list(exchange.entity_counts),
            reason="leak_guard",
        )


@dataclass
class Prepared:
    """What `prepare_plan` decided: the body to send (empty for local) and the plan behind it (None when the
    policy only forwards, or failed open)."""

    outbound: bytes
    plan: Plan | None = None


def prepare(exchange: Exchange, request: TextRequest) -> bytes:
    """Run the stages on a parsed request of any route; returns the outbound body bytes or raises."""
    return prepare_plan(exchange, request).outbound


def routes_requests(runtime: Runtime) -> bool:
    """Whether the policy ever does anything but forward (otherwise the strategy stage is skipped)."""
    return runtime.policy.strategy != "forward" or bool(runtime.policy.routing)


def prepare_plan(exchange: Exchange, request: TextRequest) -> Prepared:
    """Run the stages on a parsed request of any route; the outbound body and the strategy's plan, or raises."""
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
        return Prepared(exchange.outbound)
    start, detected, transformed = sanitized.marks
    exchange.add_time("detect", start, detected)
    exchange.add_time("transform", detected, transformed)
    result = sanitized.result
    _note_result(exchange, result)
    if result.blocked_entities:
        raise PolicyViolation(
            "the policy blocks requests containing: " + ", ".join(sorted(result.blocked_entities)),
            entities=result.blocked_entities,
            reason="entity_blocked",
        )
    if not routes_requests(runtime):
        exchange.strategy = "forward"
        return Prepared(_forward_body(exchange, request, result))
    routing = strategies.route(runtime, request, result)
    plan = strategies.Plan(routing.strategy, routing, result, fallbacks=exchange.fallbacks)
    exchange.routing_rule, exchange.topics = routing.rule_id, dict(routing.topics)
    try:
        strategies.plan(runtime, request, result, sanitized.decisions, plan)
    finally:
        exchange.strategy = plan.strategy
    if plan.strategy == "local":
        exchange.decision = "local"
        return Prepared(b"", plan)
    if plan.split is not None:
        exchange.mapping, exchange.subtasks = plan.split.mapping, len(plan.split_bodies)
        for body in plan.split_bodies:
            guard(exchange, body)
        exchange.outbound = serialize(plan.split_bodies[0])
        return Prepared(exchange.outbound, plan)
    if plan.strategy == "abstract":
        _note_result(exchange, plan.result)
        exchange.rewrite = "rules"
        if plan.rewrite_segment is not None:
            try:
                return Prepared(_forward_body(exchange, request, plan.result, no_stream=plan.local_after), plan)
            except PolicyViolation:
                # The rules' result is not safe to send; only the SLM's rewrite can still save the request.
                exchange.leak_guard, exchange.outbound = "not_run", b""
                return Prepared(b"", plan)
    return Prepared(_forward_body(exchange, request, plan.result, no_stream=plan.local_after), plan)


def _note_result(exchange: Exchange, result: TransformResult) -> None:
    exchange.entity_counts, exchange.actions, exchange.rules = result.entity_counts, result.actions, result.rules
    exchange.propagated, exchange.mapping, exchange.abstracted = result.propagated, result.mapping, result.abstracted


def _forward_body(exchange: Exchange, request: TextRequest, result: TransformResult, no_stream: bool = False) -> bytes:
    outbound_body = request.outbound(result.texts)
    if no_stream and isinstance(outbound_body, dict):  # the answer is rewritten on the device: fetch it whole
        outbound_body["stream"] = False
        outbound_body.pop("stream_options", None)
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
