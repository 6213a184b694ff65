"""Issue 4 end to end: abstract, split, local and re-personalization through real proxy processes, with the
real openai SDK, the fake upstream (which records what it received and echoes the last user message) and
the fake local SLM server (tests/fake_slm_server.py) standing in for Ollama / llama.cpp."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_slm_server import FakeSLMServer
from fake_upstream import Behaviour, FakeUpstream

NAME, BOSS, EMPLOYEE = "John Smith", "Jane Doe", "EMP-123456"
DIAGNOSIS = "I was diagnosed with breast cancer last month and start chemotherapy on Monday."
SECRET_CONTEXT = f"My manager {BOSS} doesn't know yet."
TASK = f"Can you write an email to my team from {NAME} saying I'll be out of office for a few weeks?"
HEALTH_PROMPT = f"{DIAGNOSIS} {SECRET_CONTEXT} {TASK}"
PROTECTED = [NAME, BOSS, EMPLOYEE]


def policy(extra: str) -> str:
    return TEST_POLICY + extra


def sdk(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)


def chat(proxy: ProxyProcess, prompt: str | list, stream: bool = False, **kwargs: object) -> tuple[str, dict[str, str]]:
    """The answer's text and the response headers (streamed or not)."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    raw = sdk(proxy).chat.completions.with_raw_response.create(model="m", messages=messages, stream=stream, **kwargs)
    headers = {k.lower(): v for k, v in raw.headers.items()}
    parsed = raw.parse()
    if stream:
        return "".join(c.delta.content or "" for chunk in parsed for c in chunk.choices), headers
    return parsed.choices[0].message.content or "", headers


def audit(proxy: ProxyProcess) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines() if line.strip()]
        requests = [r for r in records if "request_id" in r]
        if requests:
            return requests
        time.sleep(0.05)
    raise AssertionError("no audit record")


def last_audit(proxy: ProxyProcess, request_id: str | None = None) -> dict:
    deadline = time.monotonic() + 5
    while True:
        records = audit(proxy)
        found = [r for r in records if request_id is None or r["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert found, "the request's audit record is missing"
            return found[-1]
        time.sleep(0.05)


def sent_texts(fake: FakeUpstream) -> str:
    return "\n".join(json.dumps(r.json, ensure_ascii=False) for r in fake.requests if r.body)


def assert_nothing_protected_left(fake: FakeUpstream, *more: str) -> None:
    sent = sent_texts(fake).casefold()
    for value in [*PROTECTED, *more]:
        assert value.casefold() not in sent, "a protected value or sentence left the machine"


@pytest.fixture(scope="module")
def slm_server() -> Iterator[FakeSLMServer]:
    server = FakeSLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def slm(slm_server: FakeSLMServer) -> Iterator[FakeSLMServer]:
    slm_server.reset()
    yield slm_server
    slm_server.reset()


@pytest.fixture(scope="module")
def proxies(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], ProxyProcess]]:
    """Proxy processes by policy text, started once per module and shared by the tests that need them."""
    running: dict[str, ProxyProcess] = {}

    def get(text: str) -> ProxyProcess:
        if text not in running:
            running[text] = start_proxy(text, tmp_path_factory.mktemp("strategy"), upstream_server.base_url)
        return running[text]

    yield get
    for proxy in running.values():
        finish_proxy(proxy)


def slm_section(server: FakeSLMServer, timeout: float = 2.0) -> str:
    return (f"\nslm: {{backend: openai, base_url: \"{server.base_url}\", model: tiny, timeout_s: {timeout}, "
            f"max_tokens: 64}}\n")


# --- split --------------------------------------------------------------------------------------------

SPLIT_TEMPLATE = policy("\nstrategy: split\nsplit: {compose: template}\n")


@pytest.mark.parametrize("stream", [False, True])
def test_split_sends_only_the_task_and_restores_the_answer(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                         stream: bool) -> None:
    proxy = proxies(SPLIT_TEMPLATE)
    text, headers = chat(proxy, HEALTH_PROMPT, stream)
    assert len(fake.requests) == 1
    messages = fake.requests[0].json["messages"]
    assert messages[-1]["role"] == "user" and messages[-1]["content"].startswith("Can you write an email to my team")
    assert_nothing_protected_left(fake, DIAGNOSIS, "breast cancer", "chemotherapy", SECRET_CONTEXT)
    # The fake echoes the sub-task; its placeholder comes back as the user's own detail.
    assert NAME in text and "[PERSON_" not in text
    assert headers["x-privacy-proxy-strategy"] == "split" and headers["x-privacy-proxy-subtasks"] == "1"
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["strategy"] == "split" and record["subtasks"] == 1 and record["decision"] == "forward"
    assert record["topics"]["health"] >= 0.5  # rounded scores, no text
    assert BOSS not in json.dumps(record) and "cancer" not in json.dumps(record)


def test_split_keeps_earlier_turns_on_the_device(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream) -> None:
    proxy = proxies(SPLIT_TEMPLATE)
    history = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": f"{DIAGNOSIS} {SECRET_CONTEXT}"},
        {"role": "assistant", "content": f"I'm sorry to hear that, {NAME}."},
        {"role": "user", "content": "Now write a short out-of-office message for my email."},
    ]
    text, _headers = chat(proxy, history)
    messages = fake.requests[0].json["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]  # cloud instructions, the client's system
    assert messages[1]["content"] == "You are a concise assistant."
    assert_nothing_protected_left(fake, DIAGNOSIS, SECRET_CONTEXT)
    assert "out-of-office" in text


def test_split_falls_back_when_everything_is_sensitive(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream) -> None:
    proxy = proxies(SPLIT_TEMPLATE)  # split.fallback defaults to abstract
    _text, headers = chat(proxy, f"{SECRET_CONTEXT} {DIAGNOSIS}")
    assert headers["x-privacy-proxy-strategy"] == "abstract"
    assert headers["x-privacy-proxy-fallback"] == "split:nothing_to_send"
    assert_nothing_protected_left(fake)
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["fallback"] == ["split:nothing_to_send"] and record["strategy"] == "abstract"


SPLIT_BLOCK = policy("\nstrategy: split\nsplit: {fallback: block}\n")


def test_split_fallback_block_refuses(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(proxies(SPLIT_BLOCK), f"{SECRET_CONTEXT} {DIAGNOSIS}")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake.requests == []


def split_slm_policy(server: FakeSLMServer, timeout: float = 2.0) -> str:
    return policy("\nstrategy: split\nsplit: {compose: auto}\n" + slm_section(server, timeout))


def test_split_composes_with_the_slm_and_streams_its_tokens(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                            slm: FakeSLMServer) -> None:
    proxy = proxies(split_slm_policy(slm))
    slm.answer = f"Hi team, I'll be out of office for a few weeks for treatment. Best, {NAME}"
    slm.piece_chars, slm.piece_delay = 6, 0.03
    stream = sdk(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": HEALTH_PROMPT}],
                                                stream=True)
    arrivals, pieces = [], []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                arrivals.append(time.monotonic())
                pieces.append(choice.delta.content)
    assert "".join(pieces) == slm.answer
    assert len(pieces) > 5 and arrivals[-1] - arrivals[0] > 0.1  # streamed as produced, not one buffered blob
    assert fake.requests[0].json["stream"] is False  # the cloud's answer is needed whole to compose
    assert_nothing_protected_left(fake, DIAGNOSIS, SECRET_CONTEXT)
    # The composer (local) saw the private context and the cloud's (restored) answer.
    composer_prompt = json.dumps(slm.requests[-1]["messages"])
    assert "breast cancer" in composer_prompt and BOSS in composer_prompt
    record = last_audit(proxy)
    assert record["strategy"] == "split" and record["answer"] == "composed" and record["slm_ms"] > 0


def test_split_composition_timeout_falls_back_to_the_template(proxies: Callable[[str], ProxyProcess],
                                                             fake: FakeUpstream, slm: FakeSLMServer) -> None:
    proxy = proxies(split_slm_policy(slm, timeout=0.5))
    slm.delay = 2.0
    text, headers = chat(proxy, HEALTH_PROMPT)
    assert NAME in text and "out of office" in text  # the cloud's answer, restored
    assert headers["x-privacy-proxy-fallback"] == "compose:slm_timeout"
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["fallback"] == ["compose:slm_timeout"] and record["answer"] == "restored"


SPLIT_SKETCH = policy("\nstrategy: split\nsplit: {mode: sketch, compose: template}\n")


@pytest.mark.parametrize("stream", [False, True])
def test_split_sketch_sends_a_generic_task_and_fills_in_the_details(proxies: Callable[[str], ProxyProcess],
                                                                    fake: FakeUpstream, stream: bool) -> None:
    proxy = proxies(SPLIT_SKETCH)
    prompt = f"Write a letter to my boss {BOSS} explaining my chemotherapy schedule."
    text, _headers = chat(proxy, prompt, stream)
    messages = fake.requests[0].json["messages"]
    assert messages[-1]["content"] == "Write a letter to my boss [PERSON_1] explaining my [DETAIL_1] schedule."
    assert "draft or outline" in messages[0]["content"]  # the sketch instructions
    assert_nothing_protected_left(fake, "chemotherapy")
    assert text == prompt  # the fake echoes the draft; the device fills the details back in


def test_split_repersonalizes_a_templated_answer(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                 slm: FakeSLMServer) -> None:
    proxy = proxies(policy("\nstrategy: split\nsplit: {compose: template, repersonalize: true}\n" + slm_section(slm)))
    slm.answer = f"Hi team, I'm out for a few weeks of treatment. {NAME}"
    text, headers = chat(proxy, HEALTH_PROMPT, stream=True)
    assert text == slm.answer
    assert_nothing_protected_left(fake, DIAGNOSIS, SECRET_CONTEXT)
    adapt_prompt = json.dumps(slm.requests[-1]["messages"])
    assert "breast cancer" in adapt_prompt and NAME in adapt_prompt  # private context + the restored answer
    assert last_audit(proxy, headers["x-privacy-proxy-request-id"])["answer"] == "repersonalized"


# --- abstract -----------------------------------------------------------------------------------------

ABSTRACT_RULES = policy("\nstrategy: abstract\n")
ABSTRACT_PROMPT = f"My manager {BOSS} ({EMPLOYEE}) asked me to draft a thank-you note to our client. Please write it."


@pytest.mark.parametrize("stream", [False, True])
def test_abstract_with_rules_sends_generalizations(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                   stream: bool) -> None:
    proxy = proxies(ABSTRACT_RULES)
    text, headers = chat(proxy, ABSTRACT_PROMPT, stream)
    sent = fake.requests[0].json["messages"][0]["content"]
    assert sent.startswith("My manager ([REDACTED EMPLOYEE_ID])")
    assert_nothing_protected_left(fake)
    assert text == sent  # not restorable: the answer keeps the abstraction
    assert headers["x-privacy-proxy-strategy"] == "abstract"
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["actions"]["PERSON"] == "abstract" and record["rewrite"] == "rules"
    assert record["abstracted"]["PERSON"] == {"person_role": 1}


def abstract_slm_policy(server: FakeSLMServer, timeout: float = 2.0, repersonalize: bool = False) -> str:
    extra = "\nsplit: {repersonalize: true}\n" if repersonalize else ""
    return policy("\nstrategy: abstract\nabstraction: {use_slm: true}\n" + extra + slm_section(server, timeout))


def test_abstract_sends_the_slm_rewrite(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                        slm: FakeSLMServer) -> None:
    proxy = proxies(abstract_slm_policy(slm))
    slm.answer = "Draft a short thank-you note to a client on behalf of a team."
    _text, headers = chat(proxy, ABSTRACT_PROMPT)
    assert fake.requests[0].json["messages"][0]["content"] == slm.answer
    assert "x-privacy-proxy-fallback" not in headers
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["rewrite"] == "slm" and record["slm_ms"] > 0 and record["leak_guard"] == "pass"


def test_abstract_rejects_a_rewrite_that_names_a_protected_value(proxies: Callable[[str], ProxyProcess],
                                                                 fake: FakeUpstream, slm: FakeSLMServer) -> None:
    proxy = proxies(abstract_slm_policy(slm))
    slm.answer = f"Write a thank-you note from {BOSS}'s team."
    _text, headers = chat(proxy, ABSTRACT_PROMPT)
    assert_nothing_protected_left(fake)
    assert headers["x-privacy-proxy-fallback"] == "abstract:leak"
    assert last_audit(proxy, headers["x-privacy-proxy-request-id"])["rewrite"] == "rules"


def test_abstract_rewrite_timeout_falls_back_to_the_rules(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                         slm: FakeSLMServer) -> None:
    proxy = proxies(abstract_slm_policy(slm, timeout=0.5))
    slm.delay = 2.0
    _text, headers = chat(proxy, ABSTRACT_PROMPT)
    assert fake.requests[0].json["messages"][0]["content"].startswith("My manager (")
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["fallback"] == ["abstract:slm_timeout"] and record["rewrite"] == "rules"


@pytest.mark.parametrize("stream", [False, True])
def test_repersonalization_rewrites_the_cloud_answer_locally(proxies: Callable[[str], ProxyProcess],
                                                             fake: FakeUpstream, slm: FakeSLMServer, stream: bool) -> None:
    proxy = proxies(abstract_slm_policy(slm, repersonalize=True))
    # The first SLM call is the rewrite, the second the re-personalization.
    slm.queue = ["Draft a thank-you note to a client.", f"Dear client, thank you. Best regards, {BOSS}"]
    fake.push(Behaviour(answer="Dear client, thank you. Best regards, your manager."))
    text, headers = chat(proxy, ABSTRACT_PROMPT, stream)
    assert text == f"Dear client, thank you. Best regards, {BOSS}"
    assert_nothing_protected_left(fake)
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["answer"] == "repersonalized" and record["rewrite"] == "slm"
    # The local model was given the user's private details to put back.
    assert BOSS in json.dumps(slm.requests[-1]["messages"])


# --- local --------------------------------------------------------------------------------------------


def routed_local_policy(server: FakeSLMServer) -> str:
    return policy("\nrouting:\n  - id: health-local\n    when: {topics: [health], min_score: 0.5}\n"
                  "    strategy: local\n" + slm_section(server))


@pytest.mark.parametrize("stream", [False, True])
def test_health_topics_are_answered_locally(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                            slm: FakeSLMServer, stream: bool) -> None:
    proxy = proxies(routed_local_policy(slm))
    slm.answer = "Take it one day at a time; here is a draft for your team."
    text, headers = chat(proxy, HEALTH_PROMPT, stream)
    assert text == slm.answer
    assert fake.requests == []  # nothing left the machine
    assert headers["x-privacy-proxy-strategy"] == "local"
    assert headers["x-privacy-proxy-routing-rule"] == "health-local"
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["decision"] == "local" and record["strategy"] == "local" and record["routing_rule"] == "health-local"
    assert record["topics"]["health"] >= 0.5 and record["bytes_out"] == 0 and record["upstream_status"] is None
    assert "cancer" not in json.dumps(record) and BOSS not in json.dumps(record)
    # The local model saw the whole conversation.
    assert "breast cancer" in json.dumps(slm.requests[-1]["messages"])


def test_other_topics_are_still_forwarded(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                          slm: FakeSLMServer) -> None:
    proxy = proxies(routed_local_policy(slm))
    text, headers = chat(proxy, f"Please email {NAME} about the quarterly report.")
    assert text == f"Please email {NAME} about the quarterly report."
    assert headers["x-privacy-proxy-strategy"] == "forward" and slm.requests == []
    assert_nothing_protected_left(fake)


def test_local_slm_failure_is_an_error_not_a_forward(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                     slm: FakeSLMServer) -> None:
    proxy = proxies(routed_local_policy(slm))
    slm.status = 500
    with pytest.raises(openai.APIStatusError) as caught:
        chat(proxy, HEALTH_PROMPT)
    assert caught.value.status_code == 503 and caught.value.body["code"] == "slm_failed"
    assert fake.requests == []


def test_local_slm_failing_mid_stream_ends_with_an_error_event(proxies: Callable[[str], ProxyProcess],
                                                                fake: FakeUpstream, slm: FakeSLMServer) -> None:
    proxy = proxies(policy("\nstrategy: local\n" + slm_section(slm, timeout=0.6)))
    slm.answer, slm.piece_chars, slm.piece_delay = "a long local answer " * 5, 4, 0.1
    pieces = []
    stream = sdk(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(pieces) and "".join(pieces) != slm.answer  # part of it arrived, then the error event
    assert "slm_timeout" in str(caught.value.body) or "did not finish" in str(caught.value)
    record = last_audit(proxy)
    assert record["fault"] == "slm_timeout" and record["decision"] == "local" and fake.requests == []


LOCAL_NO_SLM = policy("\nstrategy: local\n")


@pytest.mark.parametrize("stream", [False, True])
def test_local_without_an_slm_is_a_clear_422(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                             stream: bool) -> None:
    proxy = proxies(LOCAL_NO_SLM)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        chat(proxy, "What should I cook tonight?", stream)
    error = caught.value
    assert error.body["code"] == "local_model_unavailable" and "slm.backend" in error.body["message"]
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-privacy-proxy-strategy"] == "local"
    assert fake.requests == []
    record = last_audit(proxy, error.response.headers["x-privacy-proxy-request-id"])
    assert record["decision"] == "block" and record["reason"] == "local_model_unavailable"


def test_split_and_local_are_refused_on_other_routes(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream) -> None:
    proxy = proxies(SPLIT_TEMPLATE)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        sdk(proxy).completions.create(model="m", prompt="Write a haiku.")
    assert caught.value.body["code"] == "strategy_not_supported"
    assert fake.requests == []


def test_abstract_serves_other_routes_with_the_rules(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream) -> None:
    proxy = proxies(ABSTRACT_RULES)
    answer = sdk(proxy).completions.create(model="m", prompt=ABSTRACT_PROMPT)
    assert answer.choices[0].text
    assert_nothing_protected_left(fake)


# --- action: abstract ---------------------------------------------------------------------------------

ABSTRACT_ACTION = TEST_POLICY.replace(
    "  - {id: pseudonymize-ids,",
    "  - {id: abstract-people, entities: [PERSON], action: abstract}\n  - {id: pseudonymize-ids,",
)


@pytest.mark.parametrize("stream", [False, True])
def test_abstract_action_per_entity(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream, stream: bool) -> None:
    proxy = proxies(ABSTRACT_ACTION)
    prompt = f"My manager {BOSS} wants the report; mail it to jane@example.com."
    text, headers = chat(proxy, prompt, stream)
    sent = fake.requests[0].json["messages"][0]["content"]
    assert sent == "My manager wants the report; mail it to [EMAIL_ADDRESS_1]."
    # The token is restored, the abstraction is not (there is nothing to restore it from).
    assert text == "My manager wants the report; mail it to jane@example.com."
    assert headers["x-privacy-proxy-strategy"] == "forward"
    record = last_audit(proxy, headers["x-privacy-proxy-request-id"])
    assert record["actions"] == {"EMAIL_ADDRESS": "pseudonymize", "PERSON": "abstract"}
    assert record["rules"]["PERSON"] == "abstract-people"


# --- the tiny transformers model as the local SLM -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_slm import _build

    return _build(tmp_path_factory.mktemp("tiny_slm"), chat_template=True)


@pytest.mark.parametrize("stream", [False, True])
def test_local_with_an_in_process_transformers_model(proxies: Callable[[str], ProxyProcess], fake: FakeUpstream,
                                                     tiny_model: Path, stream: bool) -> None:
    proxy = proxies(policy(f"\nstrategy: local\nslm: {{backend: transformers, model: \"{tiny_model}\", max_tokens: 4, "
                           "timeout_s: 60}\n"))
    text, headers = chat(proxy, "the patient asked about the private appointment", stream)
    assert text.split() == ["private"] * 4  # the tiny model's forced word, 4 tokens
    assert fake.requests == [] and headers["x-privacy-proxy-strategy"] == "local"
