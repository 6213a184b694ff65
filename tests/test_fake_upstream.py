"""Quick checks of the fake upstream, driven by the real ``openai`` SDK."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from fake_upstream import Behaviour, FakeUpstream

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as c:
        yield c


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def test_non_stream_echo(client: openai.OpenAI, fake: FakeUpstream) -> None:
    res = client.chat.completions.create(model="gpt-x", messages=user("Héllo, 世界!"))
    assert res.choices[0].message.content == "Héllo, 世界!"
    assert res.choices[0].finish_reason == "stop"
    assert res.model == "gpt-x" and res.usage is not None and res.usage.completion_tokens > 0
    rec = fake.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.headers["authorization"] == "Bearer test"
    assert rec.json["messages"][1]["content"] == "Héllo, 世界!"


def test_text_parts_are_concatenated(client: openai.OpenAI) -> None:
    parts = [
        {"type": "text", "text": "one "},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "two"},
    ]
    messages = [{"role": "user", "content": parts}]
    res = client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert res.choices[0].message.content == "one two"


def test_stream_echo_n2(client: openai.OpenAI) -> None:
    text = "The quick brown fox — jumps over 🦊 the lazy dog."
    stream = client.chat.completions.create(model="m", messages=user(text), n=2, stream=True)
    got: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    order: list[int] = []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk" and chunk.model == "m"
        for ch in chunk.choices:
            order.append(ch.index)
            got[ch.index] += ch.delta.content or ""
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
    assert got == {0: text, 1: text}
    assert finishes == {0: "stop", 1: "stop"}
    assert order != sorted(order)  # choices are interleaved


def test_stream_tool_call_arguments_reassemble(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m", messages=user('say "hi" ✓'), tools=TOOLS, stream=True  # type: ignore[arg-type]
    )
    args, names, ids, finish = "", [], [], None
    for chunk in stream:
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                if tc.id:
                    ids.append(tc.id)
                if tc.function and tc.function.name:
                    names.append(tc.function.name)
                args += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
    assert json.loads(args) == {"text": 'say "hi" ✓'}
    assert names == ["lookup"] and ids == ["call_1"] and finish == "tool_calls"


def test_tool_choice_none_answers_text(client: openai.OpenAI) -> None:
    res = client.chat.completions.create(
        model="m", messages=user("x"), tools=TOOLS, tool_choice="none"  # type: ignore[arg-type]
    )
    assert res.choices[0].message.content == "x" and not res.choices[0].message.tool_calls


def test_usage_chunk_with_include_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m", messages=user("a b c"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


def test_rate_limit(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.push(Behaviour(status=429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=user("x"))
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


def test_push_queue_order_then_default(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.default = Behaviour(answer="default")
    fake.push(Behaviour(answer="first"), Behaviour(status=500), Behaviour(answer="third"))
    answers = []
    for _ in range(4):
        try:
            answers.append(client.chat.completions.create(model="m", messages=user("x")).choices[0].message.content)
        except openai.InternalServerError:
            answers.append("500")
    assert answers == ["first", "500", "third", "default"]


def test_finish_length(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.push(Behaviour(finish_length_at=4))
    res = client.chat.completions.create(model="m", messages=user("abcdefgh"))
    assert (res.choices[0].message.content, res.choices[0].finish_reason) == ("abcd", "length")


def test_models_and_unknown_path(client: openai.OpenAI, fake: FakeUpstream) -> None:
    assert [m.id for m in client.models.list()] == ["fake-model"]
    assert client.models.retrieve("fake-model").owned_by == "fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    r = httpx.get(fake.origin + "/v2/whatever")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    assert [q.path for q in fake.requests] == ["/v1/models", "/v1/models/fake-model", "/v1/models/nope", "/v2/whatever"]


def _raw_stream(fake: FakeUpstream, text: str = "hello there") -> bytes:
    body = {"model": "m", "stream": True, "messages": user(text)}
    with httpx.stream("POST", fake.base_url + "/chat/completions", json=body) as r:
        return b"".join(r.iter_raw())


@pytest.mark.parametrize("fault", ["garbage", "truncated", "error_event"])
def test_stream_faults(fake: FakeUpstream, fault: str) -> None:
    fake.push(Behaviour(stream_fault=fault))
    raw = _raw_stream(fake, "a fairly long answer to cut somewhere in the middle")
    assert b"[DONE]" not in raw and b'"finish_reason":"stop"' not in raw
    if fault == "truncated":
        assert not raw.endswith(b"\n\n")  # cut mid-event
    if fault == "error_event":
        assert raw.rstrip().endswith(b'"code":null}}')


def test_reset_fault_breaks_the_connection(fake: FakeUpstream) -> None:
    fake.push(Behaviour(stream_fault="reset"))
    with pytest.raises(httpx.RemoteProtocolError):
        _raw_stream(fake)


def test_streams_are_reproducible(fake: FakeUpstream) -> None:
    first = _raw_stream(fake)
    fake.reset()
    assert _raw_stream(fake) == first


def test_client_disconnect_is_counted(fake: FakeUpstream) -> None:
    fake.default = Behaviour(chunk_delay=0.05)
    body = json.dumps({"model": "m", "stream": True, "messages": user("x" * 200)}).encode()
    with socket.create_connection(("127.0.0.1", fake.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n%s" % (len(body), body))
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert fake.wait_disconnects(1, timeout=5)
    assert fake.disconnects == 1


def test_fragmented_bytes_still_decode(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.push(Behaviour(fragment_bytes=True))
    text = "€uro 世界 🙂" * 5
    stream = client.chat.completions.create(model="m", messages=user(text), stream=True)
    got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert got == text


def test_restart_is_quick() -> None:
    t = time.perf_counter()
    with FakeUpstream() as other:
        assert httpx.get(other.base_url + "/models").status_code == 200
    assert time.perf_counter() - t < 3


def test_bad_json_is_a_400(fake: FakeUpstream) -> None:
    r = httpx.post(fake.base_url + "/chat/completions", content=b"{nope")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_latency_is_low(fake: FakeUpstream) -> None:
    # Guards the TCP_NODELAY fix: with Nagle + delayed ACK each answer took ~44 ms.
    with httpx.Client() as c:
        c.get(fake.base_url + "/models")
        start = time.perf_counter()
        for _ in range(20):
            c.get(fake.base_url + "/models")
    assert time.perf_counter() - start < 0.4
