"""Request limits: nesting depth, entry counts and slow uploads are refused in the OpenAI error shape,
audited, and nothing reaches the upstream."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import Behaviour, FakeUpstream

LIMITED_POLICY = TEST_POLICY.replace(
    "server: {max_body_bytes: 262144}",
    "server: {max_body_bytes: 262144, max_json_depth: 16, max_messages: 50, body_timeout: 1.5}",
)


@pytest.fixture(scope="module")
def limited(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    assert LIMITED_POLICY != TEST_POLICY
    running = start_proxy(LIMITED_POLICY, tmp_path_factory.mktemp("limits"), upstream_server.base_url)
    yield running
    finish_proxy(running)


def post(proxy: ProxyProcess, route: str, body: dict) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}{route}", json=body, timeout=10)


def last_audit(proxy: ProxyProcess) -> dict:
    return json.loads(proxy.audit_path.read_text().splitlines()[-1])


def nested(depth: int) -> dict:
    value: object = "John Smith"
    for _ in range(depth):
        value = {"a": [value]}
    return value  # type: ignore[return-value]


def test_deeply_nested_body_is_refused(limited: ProxyProcess, fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": nested(20)}
    response = post(limited, "/chat/completions", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_deeply_nested" and "John Smith" not in response.text
    assert fake.requests == []
    assert last_audit(limited)["decision"] == "reject"
    # Within the limit the same shape is served.
    shallow = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {"a": ["b"]}}
    assert post(limited, "/chat/completions", shallow).status_code == 200


@pytest.mark.parametrize(("route", "field", "entry"), [
    ("/chat/completions", "messages", {"role": "user", "content": "hi"}),
    ("/responses", "input", {"role": "user", "content": "hi"}),
    ("/completions", "prompt", "hi"),
    ("/embeddings", "input", "hi"),
])
def test_too_many_entries_are_refused(limited: ProxyProcess, fake: FakeUpstream, route: str, field: str,
                                      entry: object) -> None:
    response = post(limited, route, {"model": "m", field: [entry] * 51})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "too_many_messages" and error["param"] == field
    assert fake.requests == []
    assert post(limited, route, {"model": "m", field: [entry] * 50}).status_code == 200


def test_stalled_upload_times_out_with_408(limited: ProxyProcess, fake: FakeUpstream) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "I am John Smith"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(head + body[:20])  # then nothing more
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.0 <= elapsed < 8, elapsed
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "request_timeout"
    assert fake.requests == []
    assert last_audit(limited)["reason"] == "request_timeout"
    assert limited.health().status_code == 200


OVERLOAD_POLICY = TEST_POLICY.replace(
    'timeouts: {connect: 2, read: 10, write: 10, pool: 5}}',
    'timeouts: {connect: 2, read: 10, write: 10, pool: 5, queue: 0.5}, max_in_flight: 1}',
)


def test_requests_beyond_the_in_flight_limit_wait_then_get_503(upstream_server: FakeUpstream, tmp_path) -> None:
    assert OVERLOAD_POLICY != TEST_POLICY
    upstream_server.reset()
    proxy = start_proxy(OVERLOAD_POLICY, tmp_path / "proxy", upstream_server.base_url)
    try:
        upstream_server.push(Behaviour(response_delay=2.0))
        body = {"model": "m", "messages": [{"role": "user", "content": "I am John Smith"}]}
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(post, proxy, "/chat/completions", body)
            time.sleep(0.5)  # the slow request holds the only slot
            queued = post(proxy, "/chat/completions", body)
            assert slow.result().status_code == 200
        assert queued.status_code == 503, queued.text
        assert queued.json()["error"]["code"] == "proxy_overloaded"
        assert queued.headers["retry-after"] == "1" and queued.headers["x-should-retry"] == "true"
        assert len(upstream_server.requests) == 1  # the queued one never reached the upstream
        records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
        assert [r["fault"] for r in records if r.get("fault")] == ["proxy_overloaded"]
        # The slot came back when the slow answer was read.
        assert post(proxy, "/chat/completions", body).status_code == 200
    finally:
        finish_proxy(proxy)
