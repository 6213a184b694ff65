"""Prometheus metrics: one registry for the process, fed at a few points, served at ``GET /metrics``.

Where the numbers come from:
    ProxyState.record(exchange)   → requests, entities, blocks, stage and total latency, mid-stream upstream faults
    Upstream.send / its slots      → upstream errors (transport failures and HTTP statuses ≥ 400), in-flight gauge
    Exchange.add_slm_time          → SLM latency (every call of the local model)

Labels never carry a value from a request: only route templates (``/v1/responses/{id}``), decision,
strategy and block-reason names, entity *type* names, stage names, error codes and HTTP status codes.
A route label is always one of the proxy's own templates or ``other``, so a client cannot grow the
label set by calling made-up paths.

Who may read ``/metrics`` is `server.metrics` (see access.py): ``auto`` (default) — the admin key when
access keys are on, else loopback clients only (and the admin key from anywhere); ``open``; ``admin``; ``off``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

if TYPE_CHECKING:
    from privacy_proxy.pipeline import Exchange

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "observe_exchange",
    "observe_slm",
    "render",
    "upstream_error",
    "upstream_slot_released",
    "upstream_slot_taken",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SLM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Everything a label may say about a route: the proxy's own templates. Other paths count as "other".
_KNOWN_ROUTES: set[str] = {
    "/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings", "/v1/messages",
    "/v1/responses/{id}", "/v1/responses/{id}/input_items",
}

REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

REQUESTS = Counter("privacy_proxy_requests", "Requests handled, by route template, decision and strategy.",
                   ("route", "decision", "strategy"), registry=REGISTRY)
ENTITIES = Counter("privacy_proxy_entities", "Entities detected in requests, by type.", ("entity_type",),
                   registry=REGISTRY)
BLOCKS = Counter("privacy_proxy_blocks", "Requests blocked, by reason.", ("reason",), registry=REGISTRY)
STAGE_SECONDS = Histogram("privacy_proxy_stage_duration_seconds",
                          "Time spent per pipeline stage (total: the whole request, as audited).", ("stage",),
                          buckets=_LATENCY_BUCKETS, registry=REGISTRY)
UPSTREAM_ERRORS = Counter("privacy_proxy_upstream_errors",
                          "Upstream failures: an HTTP status >= 400 or a proxy error code (timeout, TLS, broken stream).",
                          ("code",), registry=REGISTRY)
UPSTREAM_IN_FLIGHT = Gauge("privacy_proxy_upstream_in_flight", "Requests (and open streams) to the upstream now.",
                           registry=REGISTRY)
UPSTREAM_SLOTS = Gauge("privacy_proxy_upstream_slots", "upstream.max_in_flight of the running upstream client.",
                       registry=REGISTRY)
SLM_SECONDS = Histogram("privacy_proxy_slm_duration_seconds", "Time per call of the local model (SLM), by backend.",
                        ("backend",), buckets=_SLM_BUCKETS, registry=REGISTRY)
ENTITY_TYPE_LIMIT = 200  # type names come from the policy; a bound keeps a broken recognizer from exploding series
_seen_types: set[str] = set()


def route_label(exchange: Exchange) -> str:
    # A passthrough exchange exists only for a route the policy lists (server.passthrough_routes).
    return exchange.route if exchange.route in _KNOWN_ROUTES or exchange.decision == "passthrough" else "other"


def observe_exchange(exchange: Exchange) -> None:
    """Count one finished exchange (called once, when its audit record is written or fails to be)."""
    strategy = exchange.strategy or ("forward" if exchange.decision.startswith("forward") else exchange.decision)
    REQUESTS.labels(route_label(exchange), exchange.decision, strategy).inc()
    for entity, count in exchange.entity_counts.items():
        if count > 0 and (len(_seen_types) < ENTITY_TYPE_LIMIT or entity in _seen_types):
            _seen_types.add(entity)
            ENTITIES.labels(entity).inc(count)
    if exchange.decision == "block":
        BLOCKS.labels(exchange.reason or "unknown").inc()
    for stage, seconds in exchange.timings.items():
        STAGE_SECONDS.labels(stage).observe(seconds)
    STAGE_SECONDS.labels("total").observe(exchange.elapsed())
    # Statuses and transport failures were counted by Upstream.send; a stream that broke after a good
    # status is counted here.
    fault = exchange.fault or ""
    if fault.startswith("upstream") and exchange.upstream_status is not None and exchange.upstream_status < 400:
        UPSTREAM_ERRORS.labels(fault).inc()


def observe_slm(backend: str, seconds: float) -> None:
    SLM_SECONDS.labels(backend).observe(seconds)


def upstream_error(code: str | int) -> None:
    UPSTREAM_ERRORS.labels(str(code)).inc()


def upstream_slot_taken() -> None:
    UPSTREAM_IN_FLIGHT.inc()


def upstream_slot_released() -> None:
    UPSTREAM_IN_FLIGHT.dec()


def render() -> bytes:
    return generate_latest(REGISTRY)
