"""Generated bodies against a real proxy: no 5xx of the proxy's own making, no crash, no PII in errors.

Hypothesis builds request bodies for every scanned route from a grammar that mixes well-formed
fields, wrong types, odd nesting, huge and empty values and raw bytes, with known private values
planted in the text. The proxy runs as a real process in front of the fake upstream, which always
answers 200. Every answer must then be

- a 2xx (the request was fine), or a 4xx in the OpenAI error shape whose message quotes no planted
  value (a clear refusal);
- never a 5xx (the upstream never failed, so a 5xx would be the proxy's own fault);

and afterwards the proxy still answers /healthz and no planted value reached the upstream unless the
policy lets it through. The default run sends a few hundred bodies; `--extended` sends over 10,000.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import FakeUpstream

PLANTED = ("jane.doe@example.com", "John Smith", "EMP-123456", "+1 212 555 0143")
ROUTES = ("/chat/completions", "/completions", "/embeddings", "/responses")
EXTENDED_EXAMPLES = 2600  # per route: over 10,000 bodies in all
DEFAULT_EXAMPLES = 60


def examples() -> int:
    return EXTENDED_EXAMPLES if os.environ.get("PRIVACY_PROXY_FUZZ_EXTENDED") else DEFAULT_EXAMPLES


@pytest.fixture(scope="module")
def fuzz_proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Iterator[ProxyProcess]:
    if request.config.getoption("--extended"):
        os.environ["PRIVACY_PROXY_FUZZ_EXTENDED"] = "1"
    running = start_proxy(TEST_POLICY, tmp_path_factory.mktemp("fuzz"), upstream_server.base_url)
    yield running
    finish_proxy(running)


# --- the grammar ------------------------------------------------------------------------------------

planted_text = st.builds(
    lambda before, value, after: f"{before}\n{value}\n{after}",  # newlines: no number runs on into digits
    st.text(max_size=40), st.sampled_from(PLANTED), st.text(max_size=40),
)
odd_text = st.one_of(st.text(max_size=200), st.just(""), st.text(alphabet="\x00\ud7ff\ufeff\u202e", max_size=8))
# Planted values go only where text is scanned; identifiers and junk fields get text without them.
text = st.one_of(odd_text, planted_text)
scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), odd_text)
anything = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                        max_leaves=12)
role = st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]), odd_text)
content_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("input_text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}),
    anything,
)
content = st.one_of(text, st.lists(content_part, max_size=3), anything)
tool_call = st.fixed_dictionaries({
    "id": odd_text, "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": odd_text, "arguments": st.one_of(
        text, planted_text.map(lambda v: json.dumps({"q": v})), anything)}),
})
message = st.one_of(
    st.fixed_dictionaries({"role": role, "content": content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(st.none(), text),
                           "tool_calls": st.lists(tool_call, max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": odd_text, "content": content}),
    anything,
)
model = st.one_of(st.just("fake-model"), odd_text, anything)
stream = st.one_of(st.booleans(), anything)

chat_body = st.fixed_dictionaries(
    {"model": model, "messages": st.one_of(st.lists(message, max_size=4), anything)},
    optional={"stream": stream, "n": st.integers(-2, 3), "tools": anything, "temperature": anything},
)
completions_body = st.fixed_dictionaries(
    {"model": model, "prompt": st.one_of(text, st.lists(text, max_size=3), st.lists(st.integers(0, 2**20), max_size=5),
                                         anything)},
    optional={"stream": stream, "suffix": st.one_of(text, anything), "echo": anything, "n": st.integers(-2, 3)},
)
embeddings_body = st.fixed_dictionaries(
    {"model": model, "input": st.one_of(text, st.lists(text, max_size=3),
                                        st.lists(st.lists(st.integers(0, 2**20), max_size=5), max_size=2), anything)},
    optional={"encoding_format": st.one_of(st.sampled_from(["float", "base64"]), anything)},
)
response_item = st.one_of(
    st.fixed_dictionaries({"type": st.just("message"), "role": role, "content": content}),
    st.fixed_dictionaries({"role": role, "content": content}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": odd_text, "name": odd_text,
                           "arguments": st.one_of(text, planted_text.map(lambda v: json.dumps({"q": v})))}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": odd_text, "output": content}),
    anything,
)
responses_body = st.fixed_dictionaries(
    {"model": model, "input": st.one_of(text, st.lists(response_item, max_size=4), anything)},
    optional={"instructions": st.one_of(text, anything), "stream": stream, "tools": anything,
              "store": anything, "previous_response_id": st.one_of(odd_text, anything)},
)
BODIES = {"/chat/completions": chat_body, "/completions": completions_body, "/embeddings": embeddings_body,
          "/responses": responses_body}


def raw_variants(body: Any) -> st.SearchStrategy[bytes]:
    """The body as JSON, or damaged: truncated, with a byte flipped, not UTF-8, not an object."""
    encoded = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    return st.one_of(
        st.just(encoded),
        st.integers(0, max(0, len(encoded) - 1)).map(lambda cut: encoded[:cut]),
        st.integers(0, max(0, len(encoded) - 1)).map(lambda at: encoded[:at] + b"\xff" + encoded[at + 1:]),
        st.just(b"[" + encoded + b"]"),
    )


# --- the checks -------------------------------------------------------------------------------------

def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, f"proxy answered {response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}, error
        lowered = json.dumps(error).lower()
        for value in PLANTED:
            assert value.lower() not in lowered, f"a planted value is quoted in an error: {error}"


def send(proxy: ProxyProcess, route: str, raw: bytes) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        if b'"stream": true' in raw or b'"stream":true' in raw:
            with client.stream("POST", f"{proxy.base_url}{route}", content=raw,
                               headers={"content-type": "application/json"}) as response:
                response.read()
                return response
        return client.post(f"{proxy.base_url}{route}", content=raw, headers={"content-type": "application/json"})


def stream_errors_are_clean(response: httpx.Response) -> None:
    """In a stream, an error is one `data: {"error": …}` event that quotes no planted value."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return
    for line in response.text.splitlines():
        if line.startswith("data:") and '"error"' in line:
            for value in PLANTED:
                assert value.lower() not in line.lower()


@pytest.mark.parametrize("route", ROUTES)
def test_generated_bodies_never_make_the_proxy_fail(fuzz_proxy: ProxyProcess, fake: FakeUpstream, route: str) -> None:
    @settings(max_examples=examples(), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def one_body(data: st.DataObject) -> None:
        body = data.draw(BODIES[route])
        raw = data.draw(raw_variants(body))
        response = send(fuzz_proxy, route, raw)
        check_answer(response)
        if response.status_code < 300:
            stream_errors_are_clean(response)

    one_body()
    assert fuzz_proxy.health().status_code == 200
    # The test policy pseudonymizes every planted value: none of them reached the upstream.
    for recorded in fake.requests:
        lowered = recorded.body.decode("utf-8", "replace").lower()
        for value in PLANTED:
            assert value.lower() not in lowered, f"{value!r} reached the upstream on {recorded.path}"
