"""End to end on Anthropic's /v1/messages: the real anthropic SDK → a proxy process → the fake upstream."""

from __future__ import annotations

import copy
import json

import anthropic
import httpx
import pytest
from conftest import ProxyProcess
from fake_upstream import Behaviour, FakeUpstream

from privacy_proxy.openai.anthropic_messages import (
    MessagesAnswers,
    MessagesRequest,
    MessagesStreamRestorer,
)

NAME = "John Smith"
EMAIL = "john.smith@example.com"
OTHER = "Jane Doe"
PROTECTED = [NAME, EMAIL, OTHER]
PROMPT = f'Tell "{OTHER}" that {NAME} ({EMAIL}) is late.'
TOOLS = [{"name": "send_note", "description": f"Send a note for {NAME}.",
          "input_schema": {"type": "object", "properties": {"text": {"type": "string", "description": "the note"}}}}]


def client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.origin, api_key="client-key", max_retries=0)


def test_non_stream_round_trip_with_tool_use(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    message = client(proxy).messages.create(
        model="claude-test", max_tokens=100, system=f"You help {NAME}.", tools=TOOLS,
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert message.content[0].text == PROMPT
    assert message.content[1].input == {"text": PROMPT}
    sent = fake.requests[-1]
    assert sent.json["system"] == "You help [PERSON_1]."
    assert sent.json["messages"][0]["content"] == 'Tell "[PERSON_2]" that [PERSON_1] ([EMAIL_ADDRESS_1]) is late.'
    assert sent.json["tools"][0]["description"] == "Send a note for [PERSON_1]."
    assert sent.headers["anthropic-version"] and sent.headers["authorization"] == "Bearer sk-upstream-secret"
    fake.assert_nothing_leaked(PROTECTED)
    record = json.loads(proxy.audit_path.read_text().splitlines()[-1])
    assert (record["route"], record["decision"], record["leak_guard"]) == ("/v1/messages", "forward", "pass")


def test_stream_text_and_tool_input_restored(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with client(proxy).messages.stream(model="claude-test", max_tokens=100, tools=TOOLS,
                                       messages=[{"role": "user", "content": PROMPT}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == PROMPT
    assert final.content[1].input == {"text": PROMPT}  # accumulated from the restored input_json_delta
    fake.assert_nothing_leaked(PROTECTED)


def test_history_blocks_are_scanned(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"Write to {OTHER}"},
                                     {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                     "data": f"{NAME} signed."}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "the user wants [PERSON_1] mailed", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "send_note", "input": {"to": EMAIL, "cc": [OTHER]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": f"sent to {EMAIL}"}]}]},
    ]
    fake.push(Behaviour(answer="Done, [PERSON_1] was told."))
    message = client(proxy).messages.create(model="claude-test", max_tokens=50, messages=messages)
    assert message.content[0].text == f"Done, {OTHER} was told."
    sent = fake.requests[-1].json["messages"]
    assert sent[0]["content"][1]["source"]["data"] == "[PERSON_2] signed."
    assert sent[1]["content"][0] == messages[1]["content"][0]  # signed thinking relayed unchanged
    assert sent[1]["content"][1]["input"] == {"to": "[EMAIL_ADDRESS_1]", "cc": ["[PERSON_1]"]}
    assert sent[2]["content"][0]["content"][0]["text"] == "sent to [EMAIL_ADDRESS_1]"
    fake.assert_nothing_leaked(PROTECTED)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "c", "max_tokens": 5}, "messages"),
    ({"model": "c", "max_tokens": 5, "messages": [{"content": "x"}]}, "messages[0].role"),
    ({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "server_tool_use"}]}]},
     "messages[0].content[0].type"),
    ({"model": "c", "max_tokens": 5, "system": 3, "messages": [{"role": "user", "content": "x"}]}, "system"),
])
def test_malformed_bodies_are_400(proxy: ProxyProcess, fake: FakeUpstream, body: dict, param: str) -> None:
    response = httpx.post(f"{proxy.base_url}/messages", json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert fake.requests == []


def test_image_blocked_and_card_blocked(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    for content in ([image, {"type": "text", "text": "what?"}], "card 4111 1111 1111 1111"):
        with pytest.raises(anthropic.PermissionDeniedError):
            client(proxy).messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": content}])
    assert fake.requests == []


def test_broken_stream_ends_in_an_error_event(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(stream_fault="truncated"))
    messages = [{"role": "user", "content": f"a long answer for {NAME}"}]
    with pytest.raises(anthropic.APIStatusError) as caught, \
            client(proxy).messages.stream(model="c", max_tokens=50, messages=messages) as stream:
        for _ in stream:
            pass
    assert caught.value.body["error"]["code"] == "upstream_truncated_stream"


def test_stream_restorer_holds_split_tokens_per_block() -> None:
    restorer = MessagesStreamRestorer(MessagesAnswers({"[PERSON_1]": 'Zoë "Z"'}))

    def delta(index: int, kind: str, text: str) -> dict:
        field = "text" if kind == "text_delta" else "partial_json"
        return {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: text}}

    events = [delta(0, "text_delta", "Hi [PER"), delta(1, "input_json_delta", '{"to": "[PERSON'),
              delta(0, "text_delta", "SON_1]"), {"type": "content_block_stop", "index": 0},
              delta(1, "input_json_delta", '_1]"}'), {"type": "content_block_stop", "index": 1},
              {"type": "message_stop"}]
    out = [payload for e in events for payload, _ in restorer.feed(copy.deepcopy(e))]
    texts = [e["delta"]["text"] for e in out if e["type"] == "content_block_delta" and e["index"] == 0]
    args = "".join(e["delta"]["partial_json"] for e in out if e["type"] == "content_block_delta" and e["index"] == 1)
    assert texts == ["Hi ", 'Zoë "Z"'] and json.loads(args) == {"to": 'Zoë "Z"'}
    assert restorer.finished and restorer.fault is None
    request = MessagesRequest({"model": "c", "messages": [{"role": "user", "content": "x"}],
                               "metadata": {"user_id": "Jane"}})
    assert [s.path for s in request.segments] == ["messages[0].content", "metadata.user_id"]
