"""End to end on /v1/completions (the legacy text API): the real openai SDK → a proxy process → the fake."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from conftest import ProxyProcess
from fake_upstream import Behaviour, FakeUpstream

NAME = "John Smith"
EMAIL = "john.smith@example.com"
OTHER = "Jane Doe"
PROTECTED = [NAME, EMAIL, OTHER]
PROMPT = f"Write to {NAME} at {EMAIL} about {OTHER}."


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)


def test_non_stream_prompt_and_suffix(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    raw = client(proxy).completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt=PROMPT, suffix=f"Regards, {NAME}"
    )
    answer = raw.parse()
    assert answer.choices[0].text == PROMPT
    sent = fake.requests[-1].json
    assert sent["prompt"] == "Write to [PERSON_1] at [EMAIL_ADDRESS_1] about [PERSON_2]."
    assert sent["suffix"] == "Regards, [PERSON_1]"
    fake.assert_nothing_leaked(PROTECTED)
    records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
    mine = next(r for r in records if r["request_id"] == raw.headers["x-privacy-proxy-request-id"])
    assert (mine["route"], mine["decision"], mine["entities"]) == (
        "/v1/completions", "forward", {"EMAIL_ADDRESS": 1, "PERSON": 3})


def test_prompt_list_with_n_and_echo(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    prompts = [f"Dear {NAME},", f"Hello {OTHER}!"]
    answer = client(proxy).completions.create(model="m", prompt=prompts, n=2, echo=True)
    texts = {choice.index: choice.text for choice in answer.choices}
    # echo: the answer starts with the prompt as sent (tokens), restored to the client's own words.
    assert texts == {0: prompts[0] * 2, 1: prompts[0] * 2, 2: prompts[1] * 2, 3: prompts[1] * 2}
    assert fake.requests[-1].json["prompt"] == ["Dear [PERSON_1],", "Hello [PERSON_2]!"]
    fake.assert_nothing_leaked(PROTECTED)


def test_stream_per_choice(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    for chunk in client(proxy).completions.create(model="m", prompt=PROMPT, n=2, stream=True):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert texts == {0: PROMPT, 1: PROMPT} and finish == {0: "stop", 1: "stop"}
    fake.assert_nothing_leaked(PROTECTED)


def test_stream_cut_by_length_restores_the_cut_token(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    fake.push(Behaviour(finish_length_at=len("Name: [PERSON_1")))
    chunks = list(client(proxy).completions.create(model="m", prompt=f"Name: {NAME}", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == f"Name: {NAME}"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_token_ids_are_refused_with_a_clear_error(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).completions.create(model="gpt-3.5-turbo-instruct", prompt=[1, 2, 3])
    error = caught.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("token_ids_not_supported", "prompt")
    assert "Send text instead" in error["message"]
    assert fake.requests == []
    record = json.loads(proxy.audit_path.read_text().splitlines()[-1])
    assert (record["route"], record["decision"], record["reason"]) == (
        "/v1/completions", "reject", "token_ids_not_supported")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": {"text": "x"}}, "prompt"),
        ({"model": "m", "prompt": ["a", 1]}, "prompt"),
        ({"prompt": "x"}, "model"),
        ({"model": "m", "prompt": "x", "suffix": 3}, "suffix"),
        ({"model": "m", "prompt": "x", "n": 0}, "n"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "echo"),
    ],
)
def test_malformed_bodies_are_400(proxy: ProxyProcess, fake: FakeUpstream, body: dict, param: str) -> None:
    response = httpx.post(f"{proxy.base_url}/completions", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert fake.requests == []


def test_block(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(proxy).completions.create(model="m", prompt="SSN 078-05-1120 and card 4111 1111 1111 1111")
    assert caught.value.response.json()["error"]["code"] == "pii_blocked"
    assert fake.requests == []
