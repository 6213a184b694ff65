"""OpenTelemetry traces, when the SDK is installed (`pip install 'privacy-proxy[otel]'`).

One span per request (``privacy_proxy.request``) with a child span per stage that ran
(``privacy_proxy.parse``, ``.detect``, ``.transform``, ``.guard``, ``.upstream``, ``.restore``, ``.slm``).
They are emitted when the request's audit record is written, from the timings the `Exchange` kept, so
the request path pays nothing for tracing but two clock reads per stage, and a stream's span covers the
whole stream. Attribute names and values never hold request content: route template, decision,
strategy, reason, policy name, entity *type* names and counts, status codes, the proxy's request id.

No exporter is configured by default. `configure_from_env()` (called by ``serve``) follows the standard
variables: ``OTEL_TRACES_EXPORTER=otlp`` (or ``console``) turns tracing on, and the OTLP exporter reads
``OTEL_EXPORTER_OTLP_ENDPOINT``/``_TRACES_ENDPOINT``, ``_HEADERS``, ``_PROTOCOL`` (``http/protobuf`` by
default, or ``grpc``) itself; ``OTEL_SERVICE_NAME`` defaults to ``privacy-proxy``. A tracer provider
installed by someone else (``opentelemetry-instrument``) is used as it is.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privacy_proxy.pipeline import Exchange

try:  # the API alone is a no-op; spans are recorded only with the SDK's provider
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - the otel extra is optional
    trace = None  # type: ignore[assignment]

__all__ = ["configure_from_env", "emit", "enabled", "use_provider"]

logger = logging.getLogger("privacy_proxy.telemetry")
_provider: Any = None  # an explicit provider (tests, configure_from_env); None: the global one


def enabled() -> bool:
    return trace is not None


def use_provider(provider: Any) -> None:
    """Send spans to this TracerProvider (None: back to the global provider)."""
    global _provider
    _provider = provider


def configure_from_env() -> bool:
    """Set up an exporter from OTEL_* variables; True when tracing was turned on here."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if trace is None or exporter_name in ("", "none"):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
        )
    except ImportError:
        logger.warning("OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed: "
                       "pip install 'privacy-proxy[otel]'")
        return False
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return False  # configured already (opentelemetry-instrument, or the embedding program)
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        try:
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,  # type: ignore[assignment]
                )
        except ImportError:
            logger.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-%s; tracing is off",
                           "grpc" if protocol == "grpc" else "http")
            return False
        exporter = OTLPSpanExporter()
    else:
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none); tracing is off",
                       exporter_name)
        return False
    service = os.environ.get("OTEL_SERVICE_NAME") or "privacy-proxy"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    logger.info("tracing on: %s exporter", exporter_name)
    return True


def _attributes(exchange: Exchange) -> dict[str, Any]:
    strategy = exchange.strategy or ("forward" if exchange.decision.startswith("forward") else exchange.decision)
    attributes: dict[str, Any] = {
        "http.route": exchange.route,
        "privacy_proxy.request_id": exchange.request_id,
        "privacy_proxy.decision": exchange.decision,
        "privacy_proxy.strategy": strategy,
        "privacy_proxy.policy": exchange.runtime.name,
        "privacy_proxy.stream": exchange.stream,
        "privacy_proxy.segments": exchange.segments,
        "privacy_proxy.leak_guard": exchange.leak_guard,
        "privacy_proxy.entity_types": sorted(exchange.entity_counts),
        "privacy_proxy.entity_count": sum(exchange.entity_counts.values()),
    }
    if exchange.reason:
        attributes["privacy_proxy.reason"] = exchange.reason
    if exchange.fault:
        attributes["privacy_proxy.fault"] = exchange.fault
    if exchange.upstream_status is not None:
        attributes["http.response.status_code"] = exchange.upstream_status
    return attributes


def emit(exchange: Exchange) -> None:
    """The request's span and its stages' spans, with the times the exchange kept."""
    if trace is None:
        return
    tracer = trace.get_tracer("privacy_proxy", tracer_provider=_provider)

    def wall(perf: float) -> int:
        return exchange.started_ns + int((perf - exchange.started) * 1e9)

    request = tracer.start_span("privacy_proxy.request", start_time=exchange.started_ns)
    if not request.is_recording():  # the API without an SDK provider: nothing to do
        return
    request.set_attributes(_attributes(exchange))
    if exchange.decision in ("error", "block") or exchange.fault:
        request.set_status(Status(StatusCode.ERROR, exchange.fault or exchange.reason or exchange.decision))
    parent = trace.set_span_in_context(request)
    for name, start, end in exchange.spans:
        span = tracer.start_span(f"privacy_proxy.{name}", context=parent, start_time=wall(start))
        span.end(end_time=wall(end))
    request.end(end_time=exchange.started_ns + int(exchange.elapsed() * 1e9))
