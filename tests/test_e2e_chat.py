"""End to end: the real openai SDK → a real proxy process → the fake upstream that records and echoes."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import openai
import pytest

from conftest import AUDIT_KEY, ProxyProcess
from fake_upstream import Behaviour, FakeUpstream

NAME = "John Smith"
EMAIL = "john.smith@example.com"
PHONE = "212-555-0199"
EMPLOYEE = "EMP-123456"
PROTECTED = [NAME, EMAIL, PHONE, EMPLOYEE, "Zoë Müller-Lüdenscheidt", "jane doe"]
PROMPT = f"Hi, I am {NAME} ({EMPLOYEE}). Mail me at {EMAIL} or call {PHONE}. Thanks, {NAME}!"


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)


def collect_stream(stream, chunks: list | None = None) -> tuple[dict[int, str], dict[int, str | None]]:
    texts: dict[int, str] = {}
    finish: dict[int, str | None] = {}
    for chunk in stream:
        if chunks is not None:
            chunks.append(chunk)
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    return texts, finish


def test_non_stream_round_trip_restores_exactly(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    answer = client(proxy).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    assert answer.choices[0].message.content == PROMPT
    sent = fake.requests[-1].json["messages"][0]["content"]
    assert "[PERSON_1]" in sent and "[EMAIL_ADDRESS_1]" in sent and "[EMPLOYEE_ID_1]" in sent
    assert sent.count("[PERSON_1]") == 2  # same value, same token
    fake.assert_nothing_leaked(PROTECTED)


def test_stream_two_choices_with_usage(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        n=2,
        stream_options={"include_usage": True},
    )
    chunks: list = []
    texts, finish = collect_stream(stream, chunks)
    assert texts == {0: PROMPT, 1: PROMPT}
    assert finish == {0: "stop", 1: "stop"}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0  # the usage chunk, relayed
    fake.assert_nothing_leaked(PROTECTED)


@pytest.mark.parametrize("stream", [False, True])
async def test_async_client(proxy: ProxyProcess, fake: FakeUpstream, stream: bool) -> None:
    async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k", max_retries=0) as aclient:
        messages = [
            {"role": "system", "content": f"You assist {NAME}."},
            {"role": "user", "content": [{"type": "text", "text": "Write to "}, {"type": "text", "text": EMAIL}]},
        ]
        if stream:
            text = ""
            async for chunk in await aclient.chat.completions.create(model="m", messages=messages, stream=True):
                text += "".join(c.delta.content or "" for c in chunk.choices)
        else:
            result = await aclient.chat.completions.create(model="m", messages=messages)
            text = result.choices[0].message.content
    assert text == f"Write to {EMAIL}"
    assert fake.requests[-1].json["messages"][0]["content"] == "You assist [PERSON_1]."
    fake.assert_nothing_leaked(PROTECTED)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_note",
            "description": f"Send a note on behalf of {NAME}.",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        },
    }
]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_restored(proxy: ProxyProcess, fake: FakeUpstream, stream: bool) -> None:
    prompt = f"Tell Zoë Müller-Lüdenscheidt that {NAME} ({EMAIL}) is late."
    kwargs = {"model": "m", "messages": [{"role": "user", "content": prompt}], "tools": TOOLS}
    if stream:
        arguments = ""
        for chunk in client(proxy).chat.completions.create(stream=True, **kwargs):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    arguments += call.function.arguments or ""
    else:
        message = client(proxy).chat.completions.create(**kwargs).choices[0].message
        arguments = message.tool_calls[0].function.arguments
    assert json.loads(arguments) == {"text": prompt}
    sent_tools = fake.requests[-1].json["tools"]
    assert sent_tools[0]["function"]["description"] == "Send a note on behalf of [PERSON_1]."
    fake.assert_nothing_leaked(PROTECTED)


def test_history_with_tool_calls_and_tool_results_is_scanned(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    messages = [
        {"role": "user", "content": f"Email {NAME}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": json.dumps({"who": NAME, "meta": {"mail": EMAIL}})}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"{NAME}: {PHONE}"},
        {"role": "user", "content": "Thanks, jane doe here.", "name": "jane"},
    ]
    answer = client(proxy).chat.completions.create(model="m", messages=messages)
    assert answer.choices[0].message.content == "Thanks, jane doe here."
    sent = fake.requests[-1].json["messages"]
    arguments = json.loads(sent[1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"who": "[PERSON_1]", "meta": {"mail": "[EMAIL_ADDRESS_1]"}}
    assert sent[2]["content"].startswith("[PERSON_1]: ")
    fake.assert_nothing_leaked(PROTECTED)


def test_second_turn_restores_a_token_quoted_from_the_first(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    sdk = client(proxy)
    turn1 = [{"role": "user", "content": f"I am {NAME}, reach me at {EMAIL}."}]
    first = sdk.chat.completions.create(model="m", messages=turn1).choices[0].message.content
    first_sent = fake.requests[-1].json["messages"][0]["content"]
    fake.push(Behaviour(answer="Earlier you said you are [PERSON_1] and your mail is [email_address_1]."))
    turn2 = turn1 + [{"role": "assistant", "content": first}, {"role": "user", "content": "Who am I? Also cc jane doe."}]
    second = sdk.chat.completions.create(model="m", messages=turn2).choices[0].message.content
    assert second == f"Earlier you said you are {NAME} and your mail is {EMAIL}."
    second_sent = fake.requests[-1].json["messages"]
    assert second_sent[0]["content"] == first_sent  # turn 1 keeps its tokens in turn 2
    assert "[PERSON_2]" in second_sent[2]["content"]  # a new person gets the next number
    fake.assert_nothing_leaked(PROTECTED)


@pytest.mark.parametrize("stream", [False, True])
def test_token_cut_by_length_is_restored(proxy: ProxyProcess, fake: FakeUpstream, stream: bool) -> None:
    prompt = f"Name: {NAME}"
    fake.push(Behaviour(finish_length_at=len("Name: [PERSON_1")))
    kwargs = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        texts, finish = collect_stream(client(proxy).chat.completions.create(stream=True, **kwargs))
        text, reason = texts[0], finish[0]
    else:
        choice = client(proxy).chat.completions.create(**kwargs).choices[0]
        text, reason = choice.message.content, choice.finish_reason
    assert (text, reason) == (prompt, "length")


def test_block_is_403_not_retried_and_names_types_only(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    card = "4111 1111 1111 1111"
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=3)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": f"My card is {card}"}])
    response = caught.value.response
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["code"] == "pii_blocked" and "CREDIT_CARD" in error["message"] and card not in error["message"]
    assert fake.requests == []  # nothing left, and the SDK did not retry
    records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
    blocked = [r for r in records if r["request_id"] == response.headers["x-privacy-proxy-request-id"]]
    assert len(blocked) == 1 and blocked[0]["decision"] == "block" and blocked[0]["entities"] == {"CREDIT_CARD": 1}


def test_image_part_is_blocked_by_default(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert caught.value.response.json()["error"]["code"] == "pii_blocked"
    assert fake.requests == []


def test_upstream_gets_its_own_key_and_headers_are_relayed(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    response = httpx.post(
        f"{proxy.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": "Bearer client-key", "cookie": "session=1", "openai-organization": "org-1"},
    )
    assert response.status_code == 200
    headers = fake.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-upstream-secret"
    assert "cookie" not in headers and headers["openai-organization"] == "org-1"
    assert response.headers["x-privacy-proxy-request-id"].startswith("req_")
    assert "content-encoding" not in response.headers


def test_stream_headers(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", json=body) as response:
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_models_are_relayed(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    models = client(proxy).models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert client(proxy).models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        client(proxy).models.retrieve("missing-model")


def test_health_reports_policy_and_upstream_separately(proxy: ProxyProcess) -> None:
    health = proxy.health()
    assert health.status_code == 200 and health.json()["policy"] == "test"
    upstream = httpx.get(f"{proxy.origin}/healthz/upstream").json()
    assert upstream == {"reachable": True, "status": 200}


def test_client_disconnect_closes_the_upstream_stream(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(answer="word " * 400, chunk_delay=0.01))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", json=body) as response:
        for index, _ in enumerate(response.iter_raw()):
            if index == 3:
                break
    assert fake.wait_disconnects(1, timeout=10)


def test_audit_log_is_intact_and_holds_no_values(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    client(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
    text = proxy.audit_path.read_text()
    for value in PROTECTED:
        assert value.casefold() not in text.casefold()
        assert value.casefold() not in proxy.log().casefold()
    record = json.loads(text.splitlines()[-1])
    assert record["entities"]["PERSON"] == 2 and record["rules"]["PERSON"] == "pseudonymize-ids"
    assert record["leak_guard"] == "pass" and record["upstream_status"] == 200
    verify = subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "audit", "verify", str(proxy.audit_path)],
        env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY, "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr


def test_leak_guard_blocks_a_value_hidden_in_an_unscanned_field(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "note", "description": f"A note for {NAME}", "schema": {"type": "object"}},
    }
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(proxy).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"Write to {NAME}"}], response_format=response_format
        )
    error = caught.value.response.json()["error"]
    assert error["code"] == "pii_blocked" and "leak guard" in error["message"] and NAME not in error["message"]
    assert fake.requests == []
    record = json.loads(proxy.audit_path.read_text().splitlines()[-1])
    assert (record["decision"], record["reason"], record["leak_guard"]) == ("block", "leak_guard", "hit")


def test_upstream_request_id_is_relayed_and_audited(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(headers={"x-request-id": "req_upstream_42"}))
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-request-id"] == "req_upstream_42"
    records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
    mine = next(r for r in records if r["request_id"] == raw.headers["x-privacy-proxy-request-id"])
    assert mine["upstream_request_id"] == "req_upstream_42"


def test_audit_verify_cli_names_the_first_tampered_line(proxy: ProxyProcess, fake: FakeUpstream, tmp_path) -> None:
    for text in ("one", "two", "three"):
        client(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    lines = proxy.audit_path.read_text().splitlines()
    record = json.loads(lines[-2])
    record["decision"] = "forward_unscanned"
    lines[-2] = json.dumps(record, separators=(",", ":"))
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    verify = subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "audit", "verify", str(tampered)],
        env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY, "PATH": ""}, capture_output=True, text=True,
    )
    assert verify.returncode == 1
    assert f"{tampered}:{len(lines) - 1}:" in verify.stderr and "edited" in verify.stderr
