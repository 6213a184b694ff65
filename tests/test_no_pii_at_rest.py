"""No PII at rest: after traffic on every route at DEBUG logging, no file the proxy wrote holds a value.

The proxy runs as a real process with `--log-level debug` in its own working directory, where it
keeps its log, audit log, keys and vault. Requests carry private values through every route, in
streams and not, in tool-call arguments, in a blocked request and in malformed ones. Afterwards every
file under the working directory except the policy the test wrote (whose deny list names a person)
is read as bytes and searched for every value, case-insensitively: zero hits.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from conftest import TEST_POLICY, finish_proxy, start_proxy
from fake_upstream import FakeUpstream

VALUES = ("John Smith", "jane.roe@example.org", "+1 415 555 0199", "EMP-654321", "10.20.30.40")
CARD = "4111 1111 1111 1111"
PROMPT = (f"I am {VALUES[0]}, write to {VALUES[1]} or call {VALUES[2]}. My id is {VALUES[3]}, "
          f"my laptop is {VALUES[4]}.")


def files_holding(workdir: Path, values: tuple[str, ...]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for path in sorted(workdir.rglob("*")):
        if not path.is_file() or path.name == "policy.yaml":
            continue
        data = path.read_bytes().decode("utf-8", "replace").lower()
        found = [value for value in values if value.lower() in data]
        if found:
            hits[str(path.relative_to(workdir))] = found
    return hits


def test_no_value_is_written_to_any_file(upstream_server: FakeUpstream, tmp_path: Path) -> None:
    upstream_server.reset()
    proxy = start_proxy(TEST_POLICY, tmp_path / "proxy", upstream_server.base_url, log_level="debug")
    try:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]
        answer = sdk.chat.completions.create(model="m", messages=messages).choices[0].message.content
        assert VALUES[1] in (answer or "")  # the echo came back restored: the values did pass through
        streamed = "".join(c.delta.content or "" for chunk in sdk.chat.completions.create(
            model="m", messages=messages, stream=True) for c in chunk.choices)
        assert VALUES[1] in streamed
        tool_history = [
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "send_mail", "arguments": json.dumps({"to": VALUES[1], "name": VALUES[0]})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"sent to {VALUES[1]}"},
        ]
        sdk.chat.completions.create(model="m", messages=tool_history)
        first = sdk.responses.create(model="m", input=PROMPT, store=True)
        sdk.responses.create(model="m", input="Repeat my e-mail address.", previous_response_id=first.id)
        sdk.completions.create(model="m", prompt=PROMPT)
        sdk.embeddings.create(model="m", input=[PROMPT])
        with pytest.raises(openai.PermissionDeniedError):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": f"{PROMPT} Card {CARD}."}])
        bad = httpx.post(f"{proxy.base_url}/chat/completions", timeout=10,
                         content=json.dumps({"model": "m", "messages": [{"role": "user", "content": 7}],
                                             "note": PROMPT}).encode(), headers={"content-type": "application/json"})
        assert bad.status_code == 400
        cut = httpx.post(f"{proxy.base_url}/chat/completions", timeout=10,
                         content=json.dumps({"model": "m", "messages": messages}).encode()[:-7],
                         headers={"content-type": "application/json"})
        assert cut.status_code == 400
    finally:
        finish_proxy(proxy)
    log = proxy.log()
    assert "DEBUG" in log  # the log really was at debug level
    assert files_holding(proxy.workdir, (*VALUES, CARD)) == {}
