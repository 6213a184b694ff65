"""Tests for privacy_proxy.openai.chat: which request fields are scanned and how they are written back,
request validation, and restoring whole and streamed answers (content and tool-call arguments)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_proxy.errors import BadRequest, PolicyViolation
from privacy_proxy.openai.chat import AnswerRestorer, ChatRequest, ChatStreamRestorer
from privacy_proxy.pipeline import Exchange, prepare_chat
from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
from privacy_proxy.runtime import Runtime

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def rich_body() -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "user": "user-42",
        "tools": [{
            "type": "function",
            "function": {
                "name": "send_mail",
                "description": "Send a mail for Jane Doe",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "to": {"type": "string", "description": "recipient address"},
                        "cc": {"type": "array", "items": {"type": "string", "description": "copy to"}},
                    },
                },
            },
        }],
        "messages": [
            {"role": "system", "content": "You help Jane Doe."},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "name": "jane", "content": [
                {"type": "text", "text": "part one"}, copy.deepcopy(IMAGE), {"type": "text", "text": "part two"},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "send_mail", "arguments": '{"to": "jane@corp.example.com", "cc": ["Bob", {"n": "Ann"}], "k": 3}'}},
                {"id": "c2", "type": "function", "function": {"name": "note", "arguments": "remind Jane"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "sent to Jane"},
        ],
    }


# --- segments ----------------------------------------------------------------------------------


def test_segments_in_conversation_order() -> None:
    request = ChatRequest(rich_body(), non_text_parts="allow")
    assert [(s.path, s.text) for s in request.segments] == [
        ("tools[0].function.description", "Send a mail for Jane Doe"),
        ("tools[0].function.parameters.properties.to.description", "recipient address"),
        ("tools[0].function.parameters.properties.cc.items.description", "copy to"),
        ("messages[0].content", "You help Jane Doe."),
        ("messages[1].content", "Be brief."),
        ("messages[2].name", "jane"),
        ("messages[2].content[0].text", "part one"),
        ("messages[2].content[2].text", "part two"),
        ("messages[3].tool_calls[0].function.arguments.to", "jane@corp.example.com"),
        ("messages[3].tool_calls[0].function.arguments.cc[0]", "Bob"),
        ("messages[3].tool_calls[0].function.arguments.cc[1].n", "Ann"),
        ("messages[3].tool_calls[1].function.arguments", "remind Jane"),
        ("messages[4].content", "sent to Jane"),
        ("user", "user-42"),
    ]
    assert request.non_text_paths == ["messages[2].content[1]"]
    assert request.model == "gpt-4o" and request.stream is False


def test_write_back_replaces_every_segment_and_keeps_tool_arguments_valid_json() -> None:
    request = ChatRequest(rich_body(), non_text_parts="allow")
    texts = [f'<{i} "quoted" ü>' for i in range(len(request.segments))]
    body = request.outbound(texts)
    assert body["tools"][0]["function"]["description"] == texts[0]
    assert body["messages"][2]["name"] == texts[5]
    assert body["messages"][2]["content"][1] == IMAGE
    arguments = json.loads(body["messages"][3]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"to": texts[8], "cc": [texts[9], {"n": texts[10]}], "k": 3}
    assert body["messages"][3]["tool_calls"][1]["function"]["arguments"] == texts[11]
    assert body["messages"][4]["content"] == texts[12]
    assert body["user"] == texts[13]
    assert body["messages"][3]["content"] is None
    # Unchanged texts give back an equivalent body (tool arguments re-serialized, same JSON value).
    again = ChatRequest(rich_body(), non_text_parts="allow")
    same = again.outbound([s.text for s in again.segments])
    original = rich_body()
    for call, before in zip(same["messages"][3]["tool_calls"], original["messages"][3]["tool_calls"]):
        if call["id"] == "c1":
            assert json.loads(call["function"]["arguments"]) == json.loads(before["function"]["arguments"])
            call["function"]["arguments"] = before["function"]["arguments"]
    assert same == original


def test_json_scalar_arguments_are_one_segment() -> None:
    body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '"Jane"'}},
    ]}, {"role": "assistant", "function_call": {"name": "g", "arguments": "{not json"}}]}
    request = ChatRequest(body)
    assert [(s.path, s.text) for s in request.segments] == [
        ("messages[0].tool_calls[0].function.arguments", '"Jane"'),
        ("messages[1].function_call.arguments", "{not json"),
    ]


def test_metadata_strings_are_segments() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {"who": "Jane", "tags": ["a", "b"]}}
    assert [s.path for s in ChatRequest(body).segments] == [
        "messages[0].content", "metadata.who", "metadata.tags[0]", "metadata.tags[1]",
    ]


@pytest.mark.parametrize("part", [IMAGE, {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                                  {"type": "file", "file": {"file_id": "f1"}}])
def test_non_text_parts_block_by_default(part: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, part]}]}
    with pytest.raises(PolicyViolation) as caught:
        ChatRequest(body)
    assert caught.value.reason == "non_text_content" and caught.value.status == 403


def test_non_text_parts_dropped_or_kept() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [IMAGE, {"type": "text", "text": "see"}]}]}
    dropped = ChatRequest(copy.deepcopy(body), non_text_parts="drop")
    assert dropped.outbound(["SEE"])["messages"][0]["content"] == [{"type": "text", "text": "SEE"}]
    assert dropped.non_text_paths == ["messages[0].content[0]"]
    kept = ChatRequest(copy.deepcopy(body), non_text_parts="allow")
    assert kept.outbound(["SEE"])["messages"][0]["content"] == [IMAGE, {"type": "text", "text": "SEE"}]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [{"role": 1, "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
        ({"n": 0}, "n"),
        ({"n": "2"}, "n"),
        ({"n": True}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"model": None}, "model"),
        ({"tools": {"a": 1}}, "tools"),
    ],
)
def test_bad_requests_name_the_parameter(change: dict[str, Any], param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(BadRequest) as caught:
        ChatRequest(body)
    assert caught.value.param == param
    assert caught.value.status == 400
    assert caught.value.body()["error"]["param"] == param


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(BadRequest):
        ChatRequest(["model"])  # type: ignore[arg-type]


def test_valid_optional_fields() -> None:
    request = ChatRequest({"model": "m", "n": 2, "stream": True, "messages": [{"role": "user", "content": None}]})
    assert request.stream is True and request.segments == []


# --- the pipeline on a chat body -----------------------------------------------------------------

POLICY = """
name: chat-test
detection:
  ner: none
  recognizers:
    - {name: names, entity: PERSON, deny_list: ["Jane Doe", "Bob Stone"]}
rules:
  - {id: block-cards, entities: [CREDIT_CARD], action: block}
  - {id: allow-urls, entities: [URL], action: allow}
default_action: pseudonymize
"""


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    loaded = LoadedPolicy(parse_policy(POLICY), Path("chat-test.yaml"), "0" * 64)
    return Runtime.build(loaded, secret=b"k" * 32)


def test_prepare_chat_tokenizes_tool_arguments_and_restores_the_answer(runtime: Runtime) -> None:
    body = {"model": "m", "messages": [
        {"role": "user", "content": "Mail Jane Doe at jane@corp.example.com"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "send", "arguments": json.dumps({"to": "jane@corp.example.com", "body": "Hi Jane Doe, Bob Stone here"})}}]},
    ]}
    exchange = Exchange(request_id="r1", route="/v1/chat/completions", runtime=runtime)
    outbound = json.loads(prepare_chat(exchange, body))
    assert outbound["messages"][0]["content"] == "Mail [PERSON_1] at [EMAIL_ADDRESS_1]"
    arguments = json.loads(outbound["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"to": "[EMAIL_ADDRESS_1]", "body": "Hi [PERSON_1], [PERSON_2] here"}
    assert exchange.leak_guard == "pass"
    assert exchange.entity_counts == {"PERSON": 3, "EMAIL_ADDRESS": 2}
    # The answer quotes the tokens; the client gets the originals back.
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Done, [PERSON_1]."}}]}
    restored = AnswerRestorer(exchange.mapping.restorable).completion(answer)
    assert restored["choices"][0]["message"]["content"] == "Done, Jane Doe."


def test_prepare_chat_blocks_by_entity_without_values_in_the_message(runtime: Runtime) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Jane Doe pays with 4111 1111 1111 1111"}]}
    exchange = Exchange(request_id="r2", route="/v1/chat/completions", runtime=runtime)
    with pytest.raises(PolicyViolation) as caught:
        prepare_chat(exchange, body)
    assert caught.value.entities == ["CREDIT_CARD"] and caught.value.reason == "entity_blocked"
    assert "4111" not in caught.value.message and "Jane" not in caught.value.message


# --- restoring answers -------------------------------------------------------------------------

MAPPING = {"[PERSON_1]": 'Zoë "Z" Müller-Lüdenscheidt', "[EMAIL_ADDRESS_1]": "zoe@corp.example.com", "[PERSON_2]": "Bob"}


def test_completion_restores_content_and_tool_arguments() -> None:
    arguments = json.dumps({"to": "[PERSON_1]", "mail": "[EMAIL_ADDRESS_1]", "note": "cc [PERSON_2]'s desk"})
    payload = {"id": "x", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi [PERSON_1] ([EMAIL_ADDRESS_1])",
                                 "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}},
        {"index": 1, "message": {"role": "assistant", "content": None, "refusal": "Not for [PERSON_2]",
                                 "function_call": {"name": "g", "arguments": '{"who": "[PERSON_1]"}'}}},
    ]}
    restored = AnswerRestorer(MAPPING).completion(payload)
    first, second = (choice["message"] for choice in restored["choices"])
    assert first["content"] == 'Hi Zoë "Z" Müller-Lüdenscheidt (zoe@corp.example.com)'
    assert json.loads(first["tool_calls"][0]["function"]["arguments"]) == {
        "to": 'Zoë "Z" Müller-Lüdenscheidt', "mail": "zoe@corp.example.com", "note": "cc Bob's desk",
    }
    assert second["refusal"] == "Not for Bob" and second["content"] is None
    assert json.loads(second["function_call"]["arguments"]) == {"who": 'Zoë "Z" Müller-Lüdenscheidt'}


def test_completion_with_an_empty_mapping_is_untouched() -> None:
    payload = {"choices": [{"index": 0, "message": {"content": "[PERSON_1]"}}]}
    assert AnswerRestorer({}).completion(copy.deepcopy(payload)) == payload
    assert not AnswerRestorer({})


def chunk(index: int, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def content_of(chunks: list[dict[str, Any]], index: int) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for c in chunks for choice in c["choices"] if choice["index"] == index
    )


def test_stream_restores_tokens_split_across_chunks_per_choice() -> None:
    stream = ChatStreamRestorer(AnswerRestorer(MAPPING))
    pieces = [
        chunk(0, content="Hello [PER"), chunk(1, content="Dear [EMAIL_"), chunk(0, content="SON"),
        chunk(1, content="ADDRESS_1] and [PERSON"), chunk(0, content="_2], bye"), chunk(1, content="_1]."),
        chunk(0, "stop"), chunk(1, "stop"),
    ]
    out = [stream.feed(copy.deepcopy(piece)) for piece in pieces]
    assert content_of(out, 0) == "Hello Bob, bye"
    assert content_of(out, 1) == 'Dear zoe@corp.example.com and Zoë "Z" Müller-Lüdenscheidt.'
    # Nothing that could still become a token is emitted early; plain text is not held.
    assert out[0]["choices"][0]["delta"]["content"] == "Hello "
    assert stream.finish() is None


def test_stream_releases_the_tail_in_the_finish_reason_chunk() -> None:
    stream = ChatStreamRestorer(AnswerRestorer(MAPPING))
    first = stream.feed(chunk(0, content="Thanks [PERSON_1"))
    assert first["choices"][0]["delta"]["content"] == "Thanks "
    last = stream.feed(chunk(0, "length"))  # the model was cut off inside the token
    assert last["choices"][0]["delta"]["content"] == 'Zoë "Z" Müller-Lüdenscheidt'
    assert last["choices"][0]["finish_reason"] == "length"
    assert stream.finish() is None


def test_stream_restores_tool_call_argument_fragments() -> None:
    stream = ChatStreamRestorer(AnswerRestorer(MAPPING))
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}
    fragments = ['{"to": "[PER', 'SON_1]", "mail": "[EMAIL', '_ADDRESS_1]", "cc": "[PERSON_', '2]"}']
    out = [stream.feed(chunk(0, role="assistant", tool_calls=[call]))]
    for fragment in fragments:
        out.append(stream.feed(chunk(0, tool_calls=[{"index": 0, "function": {"arguments": fragment}}])))
    out.append(stream.feed(chunk(0, "tool_calls")))
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in out for choice in c["choices"] for call in choice["delta"].get("tool_calls") or []
    )
    assert json.loads(arguments) == {"to": 'Zoë "Z" Müller-Lüdenscheidt', "mail": "zoe@corp.example.com", "cc": "Bob"}


def test_finish_returns_a_last_chunk_for_an_unfinished_choice() -> None:
    stream = ChatStreamRestorer(AnswerRestorer(MAPPING))
    stream.feed(chunk(0, content="Hi [PERSON_2]"))
    assert stream.feed(chunk(1, content="Bye [PERSON_"))["choices"][0]["delta"] == {"content": "Bye "}
    stream.feed(chunk(0, "stop"))
    tool = chunk(2, tool_calls=[{"index": 1, "id": "c", "function": {"name": "f", "arguments": '{"a": "[PERSON_1'}}])
    stream.feed(tool)
    final = stream.finish()
    assert final is not None
    assert {k: final[k] for k in ("id", "object", "model")} == {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
    by_index = {choice["index"]: choice for choice in final["choices"]}
    assert set(by_index) == {1, 2}
    assert by_index[1]["delta"] == {"content": "[PERSON_"}  # not a token: given back as it came
    assert by_index[2]["delta"]["tool_calls"] == [
        {"index": 1, "function": {"arguments": json.dumps('Zoë "Z" Müller-Lüdenscheidt')[1:-1]}}
    ]
    assert stream.finish() is None


def test_usage_chunk_without_choices_passes_through() -> None:
    stream = ChatStreamRestorer(AnswerRestorer(MAPPING))
    usage = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    assert stream.feed(copy.deepcopy(usage)) == usage
    assert stream.finish() is None


# --- property: a streamed answer, chunked any way and interleaved across choices, restores like the whole --
_PIECES = st.sampled_from(["[PERSON_1]", "[EMAIL_ADDRESS_1]", "[person 1]", "PERSON_1", "[PERSON_2]", "Hi ",
                           "ü", '"', "\\", "[", "]", "_", "1", " ", "\n", "x"])
_MAPPING = {"[PERSON_1]": 'Zoë "Z" Müller', "[EMAIL_ADDRESS_1]": "zoe@example.com"}


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.lists(_PIECES, max_size=14).map("".join), min_size=1, max_size=3),
       cuts=st.lists(st.integers(1, 6), min_size=1, max_size=40),
       order_seed=st.randoms(use_true_random=False))
def test_stream_restores_like_the_whole_answer(texts: list[str], cuts: list[int], order_seed) -> None:
    answers = AnswerRestorer(_MAPPING)
    whole = [answers.text.restore(text) for text in texts]
    # Each choice's text cut into pieces; pieces of different choices interleaved in a random order.
    pending: list[tuple[int, str]] = []
    for index, text in enumerate(texts):
        position, k = 0, 0
        while position < len(text):
            size = cuts[k % len(cuts)]
            pending.append((index, text[position : position + size]))
            position, k = position + size, k + 1
    queues = {i: [p for j, p in pending if j == i] for i in range(len(texts))}
    stream = ChatStreamRestorer(answers)
    got = {i: "" for i in range(len(texts))}
    while any(queues.values()):
        index = order_seed.choice([i for i, q in queues.items() if q])
        piece = queues[index].pop(0)
        done = not queues[index]
        chunk = {"choices": [{"index": index, "delta": {"content": piece}, "finish_reason": "stop" if done else None}]}
        got[index] += stream.feed(chunk)["choices"][0]["delta"].get("content") or ""
    assert stream.finish() is None
    assert [got[i] for i in range(len(texts))] == whole
