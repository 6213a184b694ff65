"""SIGHUP re-reads the policy without dropping requests; a broken policy is refused and the old one kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import Behaviour, FakeUpstream

BLOCK_EMAIL = TEST_POLICY.replace(
    "  - {id: block-financial, entities: [CREDIT_CARD, IBAN_CODE, US_SSN], action: block}",
    "  - {id: block-financial, entities: [CREDIT_CARD, IBAN_CODE, US_SSN, EMAIL_ADDRESS], action: block}",
).replace("name: test", "name: test-v2")


@pytest.fixture
def reloadable(fake: FakeUpstream, tmp_path: Path) -> Iterator[ProxyProcess]:
    running = start_proxy(TEST_POLICY, tmp_path, fake.base_url)
    yield running
    finish_proxy(running)


def ask(proxy: ProxyProcess, text: str) -> str:
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    return sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": text}]).choices[0].message.content


def test_reload_applies_new_policy_without_dropping_a_stream_in_flight(
    reloadable: ProxyProcess, fake: FakeUpstream
) -> None:
    assert BLOCK_EMAIL != TEST_POLICY
    prompt = "Write to john.smith@example.com. " + "More words follow here. " * 30
    fake.push(Behaviour(chunk_delay=0.03))
    streamed: list[str] = []

    def stream() -> None:
        sdk = openai.OpenAI(base_url=reloadable.base_url, api_key="k", max_retries=0)
        for chunk in sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}], stream=True):
            streamed.extend(choice.delta.content or "" for choice in chunk.choices)

    worker = threading.Thread(target=stream)
    worker.start()
    # Swap only once the request is in flight (the upstream has it), so the test cannot race its own client.
    deadline = time.monotonic() + 30
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    state = reloadable.reload(BLOCK_EMAIL)
    assert state["policy"] == "test-v2"
    assert worker.is_alive(), "the stream should still be running while the policy is swapped"
    worker.join(timeout=60)
    assert "".join(streamed) == prompt  # the request in flight finished under the policy it started with

    with pytest.raises(openai.PermissionDeniedError) as caught:
        ask(reloadable, "Write to jane@example.com")
    assert "EMAIL_ADDRESS" in caught.value.response.json()["error"]["message"]


def test_broken_policy_is_refused_and_the_old_one_kept(reloadable: ProxyProcess, fake: FakeUpstream) -> None:
    state = reloadable.reload("name: test\nrules: [{id: x, entities: [PERSON], action: explode}]\n", expect_ok=False)
    assert state["policy"] == "test" and state["status"] == "ok"
    assert "action" in state["last_reload_error"]
    assert ask(reloadable, "Write to jane@example.com") == "Write to jane@example.com"
    assert "[EMAIL_ADDRESS_1]" in fake.requests[-1].json["messages"][0]["content"]
    assert reloadable.process.poll() is None
