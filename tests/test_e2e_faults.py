"""Bad input and faults: every failure is a clear OpenAI-shaped error, nothing unscanned leaves, and the
audit log says what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from conftest import TEST_POLICY, InProcessProxy, ProxyProcess, finish_proxy, free_port, start_proxy
from fake_upstream import Behaviour, FakeUpstream

SECRET_MAIL = "ceo.private@example.com"


def post(proxy: ProxyProcess | InProcessProxy, body: bytes | dict, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{proxy.base_url}/chat/completions", content=content,
                      headers={"content-type": "application/json", **headers}, timeout=30)


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    return error


def last_audit(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hello"}, "messages"),
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}, "stream"),
    ],
)
def test_malformed_bodies_are_400(proxy: ProxyProcess, fake: FakeUpstream, body: bytes | dict, param: str | None) -> None:
    error = assert_openai_error(post(proxy, body), 400, "invalid_request")
    assert error["param"] == param
    assert fake.requests == []


def test_oversized_body_gets_413_that_the_client_reads(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 600_000}])
    assert caught.value.status_code == 413
    assert caught.value.response.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []


def test_unknown_routes_are_refused(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    assert_openai_error(httpx.post(f"{proxy.base_url}/files", content=b"x"), 404, "route_not_supported")
    assert_openai_error(httpx.get(f"{proxy.origin}/nope"), 404, "unknown_route")
    assert fake.requests == []


def serve_until_exit(tmp_path: Path, policy_text: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run `privacy-proxy serve` with a policy that must stop it; return the policy path and the result."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    result = subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(policy), "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PRIVACY_PROXY_AUDIT_KEY": "ab" * 32},
    )
    return policy, result


def test_invalid_policy_file_stops_start_up_with_a_located_error(tmp_path: Path) -> None:
    policy, result = serve_until_exit(tmp_path, "name: broken\nrules:\n  - id: r1\n    entities: [PERSON]\n    action: obliterate\n")
    assert result.returncode != 0
    assert f"{policy}:5:" in result.stderr and "rules[0].action" in result.stderr


def test_upstream_down_is_502(tmp_path: Path, fake: FakeUpstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    proxy = start_proxy(TEST_POLICY, tmp_path, dead)
    try:
        error = assert_openai_error(post(proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                                    502, "upstream_unavailable")
        assert "127.0.0.1" not in error["message"]
        assert proxy.health().status_code == 200  # readiness does not depend on the upstream
        assert httpx.get(f"{proxy.origin}/healthz/upstream").json()["reachable"] is False
        assert last_audit(proxy.audit_path)["fault"] == "upstream_unavailable"
    finally:
        finish_proxy(proxy)


def test_upstream_429_is_relayed_with_retry_after(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(status=429, headers={"retry-after": "7"}))
    response = post(proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    fake.push(Behaviour(status=429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("status", [401, 500])
def test_upstream_errors_are_relayed(proxy: ProxyProcess, fake: FakeUpstream, status: int) -> None:
    fake.push(Behaviour(status=status))
    response = post(proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == status and "error" in response.json()
    assert last_audit(proxy.audit_path)["upstream_status"] == status


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("garbage", "upstream_invalid_stream"),
        ("truncated", "upstream_truncated_stream"),
        ("reset", "upstream_stream_broken"),
        ("error_event", None),
    ],
)
def test_broken_upstream_streams_end_in_an_error_event(
    proxy: ProxyProcess, fake: FakeUpstream, fault: str, code: str | None
) -> None:
    fake.push(Behaviour(stream_fault=fault, answer=f"Reply to {SECRET_MAIL} please, in a long enough answer."))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": f"write {SECRET_MAIL}"}]}
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] != "[DONE]"
    error = json.loads(events[-1])["error"]
    if code:
        assert error["code"] == code
        assert last_audit(proxy.audit_path)["fault"] == code
    with pytest.raises(openai.APIError):
        fake.push(Behaviour(stream_fault=fault))
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        for _ in sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True):
            pass
    assert SECRET_MAIL not in json.dumps([r.json for r in fake.requests])


def test_invalid_json_answer_is_502_and_audited(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(stream_fault="garbage", answer=f"Reply to {SECRET_MAIL} please."))
    response = post(proxy, {"model": "m", "messages": [{"role": "user", "content": f"write {SECRET_MAIL}"}]})
    error = assert_openai_error(response, 502, "upstream_invalid_json")
    assert SECRET_MAIL not in response.text and "[EMAIL_ADDRESS_1]" not in response.text
    record = last_audit(proxy.audit_path)
    assert record["decision"] == "error" and record["fault"] == "upstream_invalid_json"
    assert error["message"]


def test_detector_failure_blocks_and_is_audited(
    inprocess_proxy: InProcessProxy,
    upstream_server: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(text: str) -> None:
        raise RuntimeError(f"model crashed on {text}")  # the text must not reach the client or the audit

    assert inprocess_proxy.state.runtime is not None
    monkeypatch.setattr(inprocess_proxy.state.runtime.detector, "analyze", broken)
    response = post(inprocess_proxy, {"model": "m", "messages": [{"role": "user", "content": f"mail {SECRET_MAIL}"}]})
    error = assert_openai_error(response, 503, "detection_failed")
    assert SECRET_MAIL not in response.text and response.headers["x-should-retry"] == "false"
    assert upstream_server.requests == []
    record = last_audit(inprocess_proxy.audit_path)
    assert (record["decision"], record["reason"], record["fault"]) == ("block", "fault", "detection_failed")
    assert SECRET_MAIL not in inprocess_proxy.audit_path.read_text()
    assert SECRET_MAIL not in caplog.text  # the crash message quoted the text; no log line may
    assert "not forwarded" in error["message"]


def test_audit_failure_fails_the_request(
    inprocess_proxy: InProcessProxy, upstream_server: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privacy_proxy.audit import AuditError

    def broken(fields: dict) -> dict:
        raise AuditError("disk full")

    assert inprocess_proxy.state.audit is not None
    monkeypatch.setattr(inprocess_proxy.state.audit, "append", broken)
    response = post(inprocess_proxy, {"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    assert_openai_error(response, 503, "audit_unavailable")
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    with httpx.stream("POST", f"{inprocess_proxy.base_url}/chat/completions", json=body) as streamed:
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == "audit_unavailable"


async def test_health_is_503_until_the_detectors_are_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privacy_proxy.app import create_app
    from privacy_proxy.state import Overrides, ProxyState

    monkeypatch.setenv("PRIVACY_PROXY_AUDIT_KEY", "ab" * 32)
    (tmp_path / "policy.yaml").write_text(TEST_POLICY)
    state = ProxyState(tmp_path / "policy.yaml", Overrides(audit_log=str(tmp_path / "audit.jsonl")))
    state.open()
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        starting = await client.get("/healthz")
        assert starting.status_code == 503 and starting.json()["status"] == "starting"
        refused = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
        assert refused.headers["x-should-retry"] == "true"
        await state.build()
        assert (await client.get("/healthz")).status_code == 200
    await state.stop()


def test_failed_build_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    _, result = serve_until_exit(tmp_path, "name: ner\ndetection: {ner: 'spacy:/nonexistent/model'}\n")
    assert result.returncode != 0
    assert "detection.ner" in result.stderr


def test_fail_open_policy_forwards_unscanned_and_says_so_loudly(
    inprocess_factory, upstream_server: FakeUpstream, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = inprocess_factory(TEST_POLICY + "failure_mode: open\n")
    monkeypatch.setattr(proxy.state.runtime.detector, "analyze", lambda text: 1 / 0)
    content = f"mail {SECRET_MAIL}"
    response = post(proxy, {"model": "m", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200
    assert upstream_server.requests[-1].json["messages"][0]["content"] == content  # the policy chose this
    record = last_audit(proxy.audit_path)
    assert (record["decision"], record["fault"]) == ("forward_unscanned", "detection_failed")
    assert "FAIL-OPEN" in caplog.text and SECRET_MAIL not in caplog.text


def test_passthrough_route_is_forwarded_unscanned_and_audited(inprocess_factory, upstream_server: FakeUpstream) -> None:
    policy = TEST_POLICY.replace("server: {max_body_bytes: 262144}",
                                 'server: {max_body_bytes: 262144, passthrough_routes: ["/v1/files"]}')
    proxy = inprocess_factory(policy)
    response = httpx.post(f"{proxy.base_url}/files?purpose=batch", content=b"raw-bytes",
                          headers={"content-type": "application/octet-stream"})
    assert response.status_code == 404  # the fake upstream's own answer, relayed
    recorded = upstream_server.requests[-1]
    assert (recorded.method, recorded.path, recorded.body, recorded.query) == ("POST", "/v1/files", b"raw-bytes", "purpose=batch")
    assert recorded.headers["authorization"] == "Bearer sk-upstream-secret"
    record = last_audit(proxy.audit_path)
    assert (record["decision"], record["route"], record["upstream_status"]) == ("passthrough", "/v1/files", 404)
    assert_openai_error(httpx.post(f"{proxy.base_url}/audio/speech", content=b"{}"), 404, "route_not_supported")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800 lone surrogate"}]}',
        b'{"model": "m", "seed": 123456789012345678901234567890, "messages": [{"role": "user", "content": "hi"}]}',
    ],
    ids=["deep-nesting", "lone-surrogate", "big-integer"],
)
def test_odd_but_parseable_bodies_get_clean_answers(proxy: ProxyProcess, fake: FakeUpstream, raw: bytes) -> None:
    response = post(proxy, raw)
    if raw.startswith(b"[[") or b"ud800" in raw:
        assert_openai_error(response, 400, "invalid_request")
        return
    assert response.status_code == 200, response.text
    if b"seed" in raw:  # relayed exactly, not rounded through a float
        assert b"123456789012345678901234567890" in fake.requests[-1].body


def test_restore_failure_withholds_the_answer_and_is_audited(
    inprocess_proxy: InProcessProxy, upstream_server: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privacy_proxy.openai.chat import AnswerRestorer

    def broken(self: AnswerRestorer, payload: object) -> object:
        raise RuntimeError("restorer crashed")

    monkeypatch.setattr(AnswerRestorer, "completion", broken)
    response = post(inprocess_proxy, {"model": "m", "messages": [{"role": "user", "content": f"mail {SECRET_MAIL}"}]})
    assert_openai_error(response, 502, "restore_failed")
    record = last_audit(inprocess_proxy.audit_path)
    assert (record["decision"], record["fault"], record["upstream_status"]) == ("error", "restore_failed", 200)


def test_upstream_timeouts_are_502_and_stream_error_events(inprocess_factory, upstream_server: FakeUpstream) -> None:
    proxy = inprocess_factory(TEST_POLICY.replace("read: 10", "read: 0.5"))
    upstream_server.push(Behaviour(response_delay=2.0))
    error = assert_openai_error(post(proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                                502, "upstream_timeout")
    assert "127.0.0.1" not in error["message"]
    upstream_server.push(Behaviour(chunk_delay=2.0))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a longer answer"}]}
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", json=body, timeout=30) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"
    assert last_audit(proxy.audit_path)["fault"] == "upstream_timeout"
