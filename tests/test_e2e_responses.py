"""End to end on /v1/responses: the real openai SDK → a real proxy process → the fake upstream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from conftest import ProxyProcess
from fake_upstream import Behaviour, FakeUpstream

NAME = "John Smith"
EMAIL = "john.smith@example.com"
PHONE = "212-555-0199"
EMPLOYEE = "EMP-123456"
OTHER = "Jane Doe"
PROTECTED = [NAME, EMAIL, PHONE, EMPLOYEE, OTHER, "Zoë Müller-Lüdenscheidt"]
PROMPT = f"Hi, I am {NAME} ({EMPLOYEE}). Mail me at {EMAIL} or call {PHONE}. Thanks, {NAME}!"
TOOLS = [{
    "type": "function",
    "name": "send_note",
    "description": f"Send a note on behalf of {NAME}.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string", "description": f"text for {OTHER}"}}},
}]


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)


def audit_records(proxy: ProxyProcess) -> list[dict]:
    return [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]


def test_non_stream_string_input_round_trip(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    raw = client(proxy).responses.with_raw_response.create(
        model="gpt-test", input=PROMPT, instructions=f"You assist {NAME}.", metadata={"owner": NAME}
    )
    response = raw.parse()
    assert response.output_text == PROMPT
    assert response.instructions == f"You assist {NAME}."  # the echo is restored too
    assert response.metadata == {"owner": NAME}
    sent = fake.requests[-1].json
    assert sent["input"].count("[PERSON_1]") == 2 and "[EMAIL_ADDRESS_1]" in sent["input"]
    assert sent["instructions"] == "You assist [PERSON_1]."  # one token for one value across fields
    fake.assert_nothing_leaked(PROTECTED)
    record = next(r for r in audit_records(proxy) if r["request_id"] == raw.headers["x-privacy-proxy-request-id"])
    assert record["route"] == "/v1/responses" and record["decision"] == "forward"
    assert record["entities"]["PERSON"] == 4 and record["leak_guard"] == "pass"


def test_item_list_input_scans_every_text_field(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    arguments = json.dumps({"to": EMAIL, "body": f'Dear "{OTHER}"'})
    items = [
        {"role": "system", "content": f"The user is {NAME}."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"Write to {OTHER}"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": f"Sure, {OTHER}.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "send_note", "arguments": arguments},
        {"type": "function_call_output", "call_id": "call_1", "output": f"sent to {EMAIL}, phone {PHONE}"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": f"{NAME} wants mail"}]},
        {"role": "user", "content": [{"type": "input_text", "text": f"Now tell {NAME} at {EMAIL}"}]},
    ]
    response = client(proxy).responses.create(model="m", input=items, tools=TOOLS)
    assert response.output_text == f"Now tell {NAME} at {EMAIL}"
    call = next(item for item in response.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"text": f"Now tell {NAME} at {EMAIL}"}
    assert response.tools[0].description == f"Send a note on behalf of {NAME}."
    sent = fake.requests[-1].json
    assert sent["input"][0]["content"] == "The user is [PERSON_1]."
    assert json.loads(sent["input"][3]["arguments"]) == {"to": "[EMAIL_ADDRESS_1]", "body": 'Dear "[PERSON_2]"'}
    assert sent["input"][4]["output"] == "sent to [EMAIL_ADDRESS_1], phone [PHONE_NUMBER_1]"
    assert sent["input"][5]["summary"][0]["text"] == "[PERSON_1] wants mail"
    assert sent["tools"][0]["description"] == "Send a note on behalf of [PERSON_1]."
    assert sent["tools"][0]["parameters"]["properties"]["text"]["description"] == "text for [PERSON_2]"
    fake.assert_nothing_leaked(PROTECTED)


def test_stream_text_deltas_done_and_completed_agree(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    events = list(client(proxy).responses.create(model="m", input=PROMPT, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = [e.text for e in events if e.type == "response.output_text.done"]
    part = [e.part.text for e in events if e.type == "response.content_part.done"]
    item = [e.item.content[0].text for e in events if e.type == "response.output_item.done"]
    completed = events[-1]
    assert completed.type == "response.completed"
    assert deltas == done[0] == part[0] == item[0] == completed.response.output_text == PROMPT
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive, nothing skipped
    assert all("[" not in e.delta for e in events if e.type == "response.output_text.delta")
    fake.assert_nothing_leaked(PROTECTED)


def test_stream_helper_accumulates_the_restored_answer(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with client(proxy).responses.stream(model="m", input=PROMPT, tools=TOOLS) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == PROMPT
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"text": PROMPT}


def test_stream_function_call_arguments_restored_and_re_escaped(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    prompt = f'Tell "Zoë Müller-Lüdenscheidt" that {NAME} ({EMAIL}) is late.'
    events = list(client(proxy).responses.create(model="m", input=prompt, tools=TOOLS, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    item = next(e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call")
    final = next(o for o in events[-1].response.output if o.type == "function_call")
    assert deltas == done.arguments == item.arguments == final.arguments
    assert json.loads(deltas) == {"text": prompt}
    fake.assert_nothing_leaked(PROTECTED)


@pytest.mark.parametrize("stream", [False, True])
def test_two_turns_with_previous_response_id(proxy: ProxyProcess, fake: FakeUpstream, stream: bool) -> None:
    sdk = client(proxy)

    def ask(**kwargs) -> tuple[str, str]:
        if not stream:
            response = sdk.responses.create(model="m", **kwargs)
            return response.id, response.output_text
        with sdk.responses.stream(model="m", **kwargs) as events:
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            final = events.get_final_response()
        assert text == final.output_text
        return final.id, text

    first_id, first = ask(input=f"I am {NAME}, reach me at {EMAIL}.")
    assert first == f"I am {NAME}, reach me at {EMAIL}."
    # Turn 2 sends only the new input; the model quotes turn 1's tokens and the new person's.
    fake.push(Behaviour(answer="You are [PERSON_1] ([email_address_1]); I will cc [PERSON_2], [PERSON_1]."))
    second_id, second = ask(input=f"Who am I? Also cc {OTHER}, and {NAME} again.", previous_response_id=first_id)
    assert second == f"You are {NAME} ({EMAIL}); I will cc {OTHER}, {NAME}."
    sent = fake.requests[-1].json
    assert sent["previous_response_id"] == first_id
    # Same value, same token across turns; the new value gets a number turn 1 did not use.
    assert sent["input"] == "Who am I? Also cc [PERSON_2], and [PERSON_1] again."
    # Turn 3 continues turn 2: tokens of both earlier turns still restore.
    fake.push(Behaviour(answer="[PERSON_2] and [PERSON_1]"))
    _, third = ask(input="Names?", previous_response_id=second_id)
    assert third == f"{OTHER} and {NAME}"
    fake.assert_nothing_leaked(PROTECTED)


def test_previous_response_unknown_to_the_proxy_is_refused(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).responses.create(model="m", input=f"I am {NAME}", previous_response_id="resp_elsewhere")
    error = caught.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")
    assert fake.requests == []


def test_store_false_keeps_no_mapping(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    first = client(proxy).responses.create(model="m", input=f"I am {NAME}", store=False)
    with pytest.raises(openai.BadRequestError):
        client(proxy).responses.create(model="m", input="and now?", previous_response_id=first.id)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 42}, "input"),
        ({"input": "hi"}, "model"),
        ({"model": "m", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "m", "input": ["hi"]}, "input[0]"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": 1}]}]},
         "input[0].content[0].text"),
        ({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]}, "input[0].type"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
         "input[0].arguments"),
        ({"model": "m", "input": "hi", "instructions": ["x"]}, "instructions"),
        ({"model": "m", "input": "hi", "tools": {"type": "function"}}, "tools"),
        ({"model": "m", "input": "hi", "previous_response_id": 7}, "previous_response_id"),
    ],
)
def test_malformed_bodies_are_400(proxy: ProxyProcess, fake: FakeUpstream, body: dict, param: str) -> None:
    response = httpx.post(f"{proxy.base_url}/responses", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert fake.requests == []


def test_not_json_is_400(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    response = httpx.post(f"{proxy.base_url}/responses", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert fake.requests == []


def test_block_and_image_policy(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(proxy).responses.create(model="m", input="My card is 4111 1111 1111 1111")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "4111" not in caught.value.response.text
    image = [{"role": "user", "content": [{"type": "input_text", "text": "what is this"},
                                          {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]
    with pytest.raises(openai.PermissionDeniedError):
        client(proxy).responses.create(model="m", input=image)
    assert fake.requests == []
    record = audit_records(proxy)[-2]
    assert (record["route"], record["decision"], record["entities"]) == ("/v1/responses", "block", {"CREDIT_CARD": 1})


@pytest.mark.parametrize(("fault", "code"), [("truncated", "upstream_truncated_stream"),
                                              ("garbage", "upstream_invalid_stream")])
def test_broken_upstream_stream_ends_in_an_error_event(
    proxy: ProxyProcess, fake: FakeUpstream, fault: str, code: str
) -> None:
    fake.push(Behaviour(stream_fault=fault))
    with pytest.raises(openai.APIError) as caught:
        for _ in client(proxy).responses.create(model="m", input=f"Reply to {EMAIL}, in a long answer.", stream=True):
            pass
    assert caught.value.body["code"] == code
    assert audit_records(proxy)[-1]["fault"] == code
    fake.push(Behaviour(stream_fault=fault))
    body = {"model": "m", "input": "a long enough answer to cut", "stream": True}
    with httpx.stream("POST", f"{proxy.base_url}/responses", json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-2] == "event: error"  # a typed reader sees an error event too
    last = json.loads(lines[-1].removeprefix("data: "))
    assert (last["type"], last["code"], last["error"]["code"]) == ("error", code, code)
    fake.assert_nothing_leaked(PROTECTED)


def test_cut_answer_is_incomplete_and_restored(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(finish_length_at=len("Name: [PERSON_1")))
    events = list(client(proxy).responses.create(model="m", input=f"Name: {NAME}", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].type == "response.incomplete"
    assert text == events[-1].response.output[0].content[0].text == f"Name: {NAME}"


def test_upstream_error_is_relayed(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(status=429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client(proxy).responses.create(model="m", input="hi")
    assert caught.value.response.headers["retry-after"] == "3"
    assert audit_records(proxy)[-1]["upstream_status"] == 429


def test_stored_response_fetched_restored_and_deleted_with_its_mapping(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    sdk = client(proxy)
    created = sdk.responses.create(model="m", input=PROMPT, background=True)
    fetched = sdk.responses.retrieve(created.id)
    assert fetched.output_text == PROMPT  # the upstream keeps tokens; the proxy restores them on the way back
    assert fake.requests[-1].path == f"/v1/responses/{created.id}"
    items = sdk.responses.input_items.list(created.id)
    assert items.data[0].content[0].text == PROMPT
    sdk.responses.delete(created.id)
    # The mapping went with the response: a later turn cannot continue it.
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="m", input="more", previous_response_id=created.id)
    for bad in ("..%2Ffiles", "resp.1"):
        assert httpx.get(f"{proxy.base_url}/responses/{bad}").status_code in (400, 404)
    assert all(r.path.startswith("/v1/responses") for r in fake.requests)
    records = audit_records(proxy)
    assert {"/v1/responses/{id}", "/v1/responses/{id}/input_items"} <= {r["route"] for r in records}
    assert created.id not in proxy.audit_path.read_text()
