"""Observability: Prometheus /metrics (counts, stage latencies, upstream errors, in-flight), who may read
it, JSON logs with request ids, OpenTelemetry spans — and never a request's value in any of them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from conftest import (
    TEST_POLICY,
    InProcessProxy,
    ProxyProcess,
    finish_proxy,
    start_proxy,
)
from fake_upstream import Behaviour, FakeUpstream
from prometheus_client.parser import text_string_to_metric_families

from privacy_proxy import metrics, telemetry
from privacy_proxy.access import AccessControl, hash_key, metrics_refusal
from privacy_proxy.logs import REQUEST_ID, JSONFormatter
from privacy_proxy.pipeline import Exchange
from privacy_proxy.policy.model import AccessSettings

VALUES = ["John Smith", "jane.doe@example.com", "EMP-123456", "Jane Doe", "4111 1111 1111 1111", "+1 415 555 0134"]
JSON_POLICY = TEST_POLICY.replace("server: {max_body_bytes: 262144}", "server: {max_body_bytes: 262144, log_format: json}")
ADMIN, CLIENT = "pp-metrics-admin", "pp-metrics-client"
ACCESS = f"""
access:
  keys: [{{name: team, hash: "{hash_key(CLIENT)}"}}]
  admin_key_hash: "{hash_key(ADMIN)}"
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def json_proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    running = start_proxy(JSON_POLICY, tmp_path_factory.mktemp("metrics"), upstream_server.base_url)
    yield running
    finish_proxy(running)


def test_metrics_count_traffic_and_never_carry_values(json_proxy: ProxyProcess, fake: FakeUpstream) -> None:
    before = samples(httpx.get(f"{json_proxy.origin}/metrics").text)
    sdk = openai.OpenAI(base_url=json_proxy.base_url, api_key="x", max_retries=0)
    ids = []
    reply = sdk.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "Call John Smith at jane.doe@example.com about EMP-123456"}])
    ids.append(reply.headers["x-privacy-proxy-request-id"])
    assert reply.parse().choices[0].message.content == "Call John Smith at jane.doe@example.com about EMP-123456"
    stream = sdk.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "Hi Jane Doe"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hi Jane Doe"
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Card 4111 1111 1111 1111"}])
    fake.push(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Phone +1 415 555 0134"}])
    bad = httpx.post(f"{json_proxy.base_url}/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400
    # Made-up paths do not become label values.
    assert httpx.post(f"{json_proxy.origin}/v1/John-Smith/x", json={}).status_code == 404

    response = httpx.get(f"{json_proxy.origin}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    body = response.text
    for secret in [*VALUES, "John-Smith", "Smith", "example.com", "EMP-"]:
        assert secret.lower() not in body.lower(), secret
    after = samples(body)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    chat = "/v1/chat/completions"
    assert delta("privacy_proxy_requests_total", route=chat, decision="forward", strategy="forward") == 3
    assert delta("privacy_proxy_requests_total", route=chat, decision="block", strategy="block") == 1
    assert delta("privacy_proxy_requests_total", route=chat, decision="reject", strategy="reject") == 1
    assert delta("privacy_proxy_blocks_total", reason="entity_blocked") == 1
    for entity, count in {"PERSON": 2, "EMAIL_ADDRESS": 1, "EMPLOYEE_ID": 1, "CREDIT_CARD": 1, "PHONE_NUMBER": 1}.items():
        assert delta("privacy_proxy_entities_total", entity_type=entity) == count, entity
    assert delta("privacy_proxy_upstream_errors_total", code="500") == 1
    for stage in ("parse", "detect", "transform", "guard", "upstream", "restore", "total"):
        assert delta("privacy_proxy_stage_duration_seconds_count", stage=stage) >= 2, stage
    assert delta("privacy_proxy_stage_duration_seconds_count", stage="total") == 5
    assert value(after, "privacy_proxy_upstream_in_flight") == 0
    assert value(after, "privacy_proxy_upstream_slots") > 0
    labels = {label for key in after for label in dict(key[1]).values()}
    assert not any("John" in label or "Smith" in label for label in labels)

    # JSON logs: one object per line, the request's id on its line, no value anywhere.
    log = json_proxy.log()
    for secret in VALUES:
        assert secret not in log, secret
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert entries and all(set(e) >= {"time", "level", "logger", "message", "request_id"} for e in entries)
    mine = [e for e in entries if e["request_id"] == ids[0]]
    assert any("decision=forward" in e["message"] and e["logger"] == "privacy_proxy" for e in mine), entries[-5:]


def test_in_flight_gauge_follows_open_streams(json_proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(chunk_delay=0.3))
    with httpx.stream("POST", f"{json_proxy.base_url}/chat/completions", timeout=30,
                      json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}) as s:
        chunks = s.iter_bytes()  # (kept: a dropped generator would close the stream)
        next(chunks)
        during = samples(httpx.get(f"{json_proxy.origin}/metrics").text)
        assert value(during, "privacy_proxy_upstream_in_flight") == 1
        for _ in chunks:
            pass
    deadline = time.monotonic() + 5
    while value(samples(httpx.get(f"{json_proxy.origin}/metrics").text), "privacy_proxy_upstream_in_flight") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_metrics_access_rules(inprocess_factory: Callable[..., InProcessProxy]) -> None:
    proxy = inprocess_factory(TEST_POLICY + ACCESS)
    url = f"{proxy.origin}/metrics"
    assert httpx.get(url).status_code == 401  # access keys on: loopback alone is not enough
    assert httpx.get(url, headers={"authorization": f"Bearer {CLIENT}"}).status_code == 401  # client keys never
    assert httpx.get(url, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
    basic = httpx.get(url, auth=("prometheus", ADMIN))
    assert basic.status_code == 200 and "privacy_proxy_requests_total" in basic.text

    def scope(host: str, key: str | None = None) -> dict:
        headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
        return {"type": "http", "path": "/metrics", "client": (host, 5555), "headers": headers}

    off = AccessControl.from_settings(AccessSettings())
    with_admin = AccessControl.from_settings(AccessSettings(admin_key_hash=hash_key(ADMIN)))
    assert metrics_refusal(scope("127.0.0.1"), off, "auto") is None
    assert metrics_refusal(scope("::1"), off, "auto") is None
    assert metrics_refusal(scope("10.1.2.3"), off, "auto").code == "metrics_forbidden"
    assert metrics_refusal(scope("10.1.2.3", ADMIN), with_admin, "auto") is None
    assert metrics_refusal(scope("10.1.2.3"), off, "open") is None
    assert metrics_refusal(scope("127.0.0.1"), off, "off").status == 404
    assert metrics_refusal(scope("127.0.0.1"), off, "admin").code == "admin_disabled"
    assert metrics_refusal(scope("127.0.0.1"), with_admin, "admin").code == "invalid_api_key"
    assert metrics_refusal(scope("127.0.0.1", ADMIN), with_admin, "admin") is None


def test_otel_spans_per_request_and_stage(inprocess_factory: Callable[..., InProcessProxy]) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    try:
        proxy = inprocess_factory()
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0)
        raw = sdk.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "Mail jane.doe@example.com for John Smith"}])
        request_id = raw.headers["x-privacy-proxy-request-id"]
        with pytest.raises(openai.PermissionDeniedError):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Card 4111 1111 1111 1111"}])
    finally:
        telemetry.use_provider(None)
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.name == "privacy_proxy.request"]
    assert len(requests) == 2
    forwarded = next(s for s in requests if s.attributes["privacy_proxy.request_id"] == request_id)
    assert forwarded.attributes["http.route"] == "/v1/chat/completions"
    assert forwarded.attributes["privacy_proxy.decision"] == "forward"
    assert sorted(forwarded.attributes["privacy_proxy.entity_types"]) == ["EMAIL_ADDRESS", "PERSON"]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == forwarded.context.span_id]
    names = {s.name for s in children}
    assert {f"privacy_proxy.{stage}" for stage in ("parse", "detect", "transform", "guard", "upstream", "restore")} <= names
    assert all(forwarded.start_time <= s.start_time <= s.end_time <= forwarded.end_time for s in children)
    blocked = next(s for s in requests if s is not forwarded)
    assert blocked.attributes["privacy_proxy.decision"] == "block" and blocked.status.status_code.name == "ERROR"
    dumped = json.dumps([{"name": s.name, "attributes": dict(s.attributes), "status": s.status.description}
                         for s in spans], default=list)
    for secret in VALUES:
        assert secret not in dumped


def test_slm_latency_histogram() -> None:
    runtime = SimpleNamespace(slm=SimpleNamespace(backend="test-backend"))
    exchange = Exchange(request_id="req_x", route="/v1/chat/completions", runtime=runtime)  # type: ignore[arg-type]
    count = metrics.REGISTRY.get_sample_value("privacy_proxy_slm_duration_seconds_count", {"backend": "test-backend"})
    exchange.add_slm_time(0.2)
    exchange.add_slm_time(0.05)
    after = metrics.REGISTRY.get_sample_value("privacy_proxy_slm_duration_seconds_count", {"backend": "test-backend"})
    assert after - (count or 0) == 2 and exchange.slm_ms == 250.0
    assert [name for name, _, _ in exchange.spans] == ["slm", "slm"]


def test_json_formatter_keeps_only_the_exception_type() -> None:
    import logging

    try:
        raise ValueError("John Smith's card 4111 1111 1111 1111")
    except ValueError:
        record = logging.LogRecord("privacy_proxy", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info())
    token = REQUEST_ID.set("req_abc")
    try:
        line = JSONFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "req_abc" and entry["exception"] == "ValueError" and entry["message"] == "failed x"
    assert "John" not in line and "4111" not in line


def test_log_format_flag_wins_over_the_policy(fake: FakeUpstream, tmp_path: Path) -> None:
    # TEST_POLICY has log_format: text (the default); the flag asks for JSON.
    proxy = start_proxy(TEST_POLICY, tmp_path, fake.base_url, extra_args=["--log-format", "json"])
    try:
        answer = httpx.post(f"{proxy.base_url}/chat/completions", timeout=30,
                            json={"model": "m", "messages": [{"role": "user", "content": "Hello John Smith"}]})
        assert answer.status_code == 200
    finally:
        finish_proxy(proxy)
    log = proxy.log()
    lines = [line for line in log.splitlines() if line.strip()]
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert [line for line in lines if not line.startswith("{")] == [
        line for line in lines if line.startswith("privacy-proxy: policy")]  # only the start-up banner is plain
    assert any(e["request_id"] == answer.headers["x-privacy-proxy-request-id"] for e in logged)
    assert any(e["logger"].startswith("uvicorn") for e in logged)
    assert "John Smith" not in log
