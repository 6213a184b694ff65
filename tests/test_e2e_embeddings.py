"""End to end on /v1/embeddings, with the openai SDK and LangChain's OpenAIEmbeddings.

Token-id inputs (LangChain's default) are decoded only with an encoding file already on disk; this
machine has none, so the proxy process here runs with an empty tiktoken cache and refuses them,
naming the client setting. Decoding itself is tested in-process with a stand-in encoding.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator

import fake_routes
import httpx
import openai
import pytest
import tiktoken
from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import FakeUpstream
from langchain_openai import OpenAIEmbeddings

from privacy_proxy.openai import tokens

NAME = "John Smith"
EMAIL = "john.smith@example.com"
PROTECTED = [NAME, EMAIL, "Jane Doe"]
DOCS = [f"Contract signed by {NAME} ({EMAIL}).", "The weather is fine.", "Jane Doe approved it."]
SENT = ["Contract signed by [PERSON_1] ([EMAIL_ADDRESS_1]).", "The weather is fine.", "[PERSON_2] approved it."]


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    workdir = tmp_path_factory.mktemp("proxy")
    empty_cache = workdir / "tiktoken-cache"
    empty_cache.mkdir()
    running = start_proxy(TEST_POLICY, workdir, upstream_server.base_url, {"TIKTOKEN_CACHE_DIR": str(empty_cache)})
    yield running
    finish_proxy(running)


def byte_encoding() -> tiktoken.Encoding:
    """A stand-in for a real encoding (whose file cannot be fetched here): one token per byte."""
    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding("test_bytes", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={})


def test_sdk_default_base64_is_relayed_untouched(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    result = sdk.embeddings.create(model="text-embedding-3-small", input=DOCS)
    sent = fake.requests[-1].json
    assert sent["input"] == SENT and sent["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in result.data] == [fake_routes.embedding_vector(text) for text in SENT]
    fake.assert_nothing_leaked(PROTECTED)


def test_float_answer_bytes_are_the_upstream_s(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    body = {"model": "text-embedding-3-small", "input": DOCS[0], "encoding_format": "float", "dimensions": 4}
    response = httpx.post(f"{proxy.base_url}/embeddings", json=body, timeout=30)
    assert response.status_code == 200
    assert response.json() == fake_routes.embeddings_body(fake.requests[-1].json)
    assert fake.requests[-1].json["input"] == SENT[0]
    records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
    mine = next(r for r in records if r["request_id"] == response.headers["x-privacy-proxy-request-id"])
    assert (mine["route"], mine["decision"], mine["entities"]) == (
        "/v1/embeddings", "forward", {"EMAIL_ADDRESS": 1, "PERSON": 1})


def test_base64_relayed_as_is(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    body = {"model": "m", "input": ["plain text"], "encoding_format": "base64"}
    response = httpx.post(f"{proxy.base_url}/embeddings", json=body, timeout=30)
    encoded = response.json()["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == fake_routes.embedding_vector("plain text")


def test_token_ids_refused_naming_the_client_setting(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    response = httpx.post(f"{proxy.base_url}/embeddings", json={"model": "text-embedding-3-small", "input": [[1, 2]]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("token_ids_not_supported", "input")
    assert "check_embedding_ctx_length=False" in error["message"] and "cl100k_base" in error["message"]
    assert fake.requests == []


def test_langchain_default_gets_the_refusal(
    proxy: ProxyProcess, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LangChain tokenizes client-side with tiktoken; give it an encoding that needs no download.
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda model: byte_encoding())
    embeddings = OpenAIEmbeddings(base_url=proxy.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        embeddings.embed_documents(DOCS)
    assert "check_embedding_ctx_length=False" in caught.value.message
    assert fake.requests == []


def test_langchain_with_text_inputs(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    embeddings = OpenAIEmbeddings(base_url=proxy.base_url, api_key="k", max_retries=0, check_embedding_ctx_length=False)
    vectors = embeddings.embed_documents(DOCS)
    assert vectors == [fake_routes.embedding_vector(text) for text in SENT]
    assert embeddings.embed_query(f"who is {NAME}?") == fake_routes.embedding_vector("who is [PERSON_1]?")
    fake.assert_nothing_leaked(PROTECTED)


def test_block(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    response = httpx.post(f"{proxy.base_url}/embeddings", json={"model": "m", "input": ["card 4111 1111 1111 1111"]})
    assert response.status_code == 403 and response.json()["error"]["code"] == "pii_blocked"
    assert fake.requests == []


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m"}, "input"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": [["a"]]}, "input"),
    ({"input": "x"}, "model"),
    ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
])
def test_malformed_bodies_are_400(proxy: ProxyProcess, fake: FakeUpstream, body: dict, param: str) -> None:
    response = httpx.post(f"{proxy.base_url}/embeddings", json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert fake.requests == []


# -- decoding token ids, in-process with a stand-in encoding ------------------------------------


def test_langchain_token_ids_are_decoded_scanned_and_sent_as_text(
    inprocess_factory, upstream_server: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding = byte_encoding()
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda model: encoding)
    monkeypatch.setattr(tokens, "find_decoder", lambda model: (encoding, ""))
    proxy = inprocess_factory()
    embeddings = OpenAIEmbeddings(base_url=proxy.base_url, api_key="k", max_retries=0, embedding_ctx_length=16)
    vectors = embeddings.embed_documents([DOCS[1]])
    assert upstream_server.requests[-1].json["input"] == [DOCS[1][:16], DOCS[1][16:]]  # LangChain's chunks
    assert len(vectors) == 1 and len(vectors[0]) == 8
    embeddings = OpenAIEmbeddings(base_url=proxy.base_url, api_key="k", max_retries=0)
    embeddings.embed_documents(DOCS)
    assert upstream_server.requests[-1].json["input"] == SENT
    upstream_server.assert_nothing_leaked(PROTECTED)


def test_token_arrays_allow_policy_forwards_ids_unscanned(inprocess_factory, upstream_server: FakeUpstream) -> None:
    proxy = inprocess_factory(TEST_POLICY + "content: {token_arrays: allow}\n")
    response = httpx.post(f"{proxy.base_url}/embeddings", json={"model": "m", "input": [[5, 6, 7]]}, timeout=30)
    assert response.status_code == 200
    assert upstream_server.requests[-1].json["input"] == [[5, 6, 7]]
    record = json.loads(proxy.audit_path.read_text().splitlines()[-1])
    assert (record["decision"], record["reason"]) == ("forward", "token_arrays_unscanned")
