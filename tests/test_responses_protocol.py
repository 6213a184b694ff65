"""The Responses, completions and embeddings protocol code without a network: segments, write-back,
answer restoration, the typed-event stream restorer, and the vault bookkeeping."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from privacy_proxy.errors import BadRequest, PolicyViolation, VaultFailure
from privacy_proxy.openai import tokens
from privacy_proxy.openai.completions import (
    CompletionAnswers,
    CompletionsRequest,
    CompletionStreamRestorer,
)
from privacy_proxy.openai.embeddings import EmbeddingsRequest
from privacy_proxy.openai.responses import ResponsesAnswers, ResponsesRequest
from privacy_proxy.openai.responses_stream import ResponsesStreamRestorer
from privacy_proxy.vault import MemoryVault, VaultError

MAPPING = {"[PERSON_1]": 'Zoë "Z" Müller', "[EMAIL_ADDRESS_1]": "zoe@corp.example.com", "[PERSON_2]": "Bob"}


def answers(mapping: dict[str, str] = MAPPING, vault: Any = None, **body: Any) -> ResponsesAnswers:
    request = ResponsesRequest({"model": "m", "input": "x", **body})
    return ResponsesAnswers.for_request(request, mapping, vault or MemoryVault())


# --- request side ------------------------------------------------------------------------------


def test_responses_segments_cover_input_items_tools_instructions_and_prompt() -> None:
    body = {
        "model": "m",
        "instructions": "Help Jane",
        "tools": [{"type": "function", "name": "f", "description": "for Jane",
                   "parameters": {"properties": {"a": {"description": "Jane's id"}}}},
                  {"type": "web_search"}],
        "input": [
            {"role": "user", "content": "hello"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "part"},
                                                            {"type": "input_image", "image_url": "x"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"to": "Jane", "n": [1, "x"]}'},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "custom_tool_call", "call_id": "d", "name": "g", "input": "raw"},
            {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "thought"}],
             "encrypted_content": "opaque"},
            {"type": "item_reference", "id": "msg_1"},
        ],
        "prompt": {"id": "p", "variables": {"who": "Jane", "part": {"type": "input_text", "text": "v"}}},
        "user": "u1",
        "metadata": {"k": "v"},
    }
    request = ResponsesRequest(body, non_text_parts="allow")
    assert [s.path for s in request.segments] == [
        "tools[0].description", "tools[0].parameters.properties.a.description", "instructions",
        "input[0].content", "input[1].content[0].text", "input[2].arguments.to", "input[2].arguments.n[1]",
        "input[3].output[0].text", "input[4].input", "input[5].summary[0].text",
        "prompt.variables.who", "prompt.variables.part.text", "user", "metadata.k",
    ]
    assert request.non_text_paths == ["input[1].content[1]"]
    out = request.outbound([f"<{i}>" for i in range(len(request.segments))])
    assert json.loads(out["input"][2]["arguments"]) == {"to": "<5>", "n": [1, "<6>"]}
    assert out["input"][5]["encrypted_content"] == "opaque"


def test_responses_non_text_parts_block_or_drop() -> None:
    body = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"},
                                                                 {"type": "input_text", "text": "t"}]}]}
    with pytest.raises(PolicyViolation):
        ResponsesRequest(copy.deepcopy(body))
    dropped = ResponsesRequest(copy.deepcopy(body), non_text_parts="drop")
    assert dropped.outbound(["T"])["input"][0]["content"] == [{"type": "input_text", "text": "T"}]


def test_previous_response_id_loads_the_earlier_mapping_or_is_refused() -> None:
    vault = MemoryVault()
    vault.put("responses", "resp_1", {"restorable": {"[PERSON_1]": "Jane"}})
    request = ResponsesRequest({"model": "m", "input": "x", "previous_response_id": "resp_1"})
    request.load_prior(vault)
    assert request.prior == {"[PERSON_1]": "Jane"}
    unknown = ResponsesRequest({"model": "m", "input": "x", "previous_response_id": "resp_2"})
    with pytest.raises(BadRequest) as caught:
        unknown.load_prior(vault)
    assert caught.value.code == "previous_response_not_found"


class BrokenVault(MemoryVault):
    def get(self, scope: str, key: str) -> Any:
        raise VaultError("backend down")

    def put(self, scope: str, key: str, record: Any, ttl_s: float | None = None) -> None:
        raise VaultError("backend down")


def test_a_vault_fault_fails_closed() -> None:
    request = ResponsesRequest({"model": "m", "input": "x", "previous_response_id": "resp_1"})
    with pytest.raises(VaultFailure):
        request.load_prior(BrokenVault())
    with pytest.raises(VaultFailure):
        answers(vault=BrokenVault()).completion({"id": "resp_9", "output": []})


def test_answers_remember_the_merged_mapping_per_response_and_conversation() -> None:
    vault = MemoryVault()
    answers(vault=vault, conversation={"id": "conv_1"}).completion({"id": "resp_9", "output": []})
    assert vault.get("responses", "resp_9") == {"restorable": MAPPING}
    assert vault.get("conversations", "conv_1") == {"restorable": MAPPING}
    answers(vault=vault, store=False).completion({"id": "resp_10", "output": []})
    assert vault.get("responses", "resp_10") is None


def test_completions_and_embeddings_requests() -> None:
    completion = CompletionsRequest({"model": "m", "prompt": ["a", "b"], "suffix": "c", "user": "u"})
    assert [s.path for s in completion.segments] == ["prompt[0]", "prompt[1]", "suffix", "user"]
    embedding = EmbeddingsRequest({"model": "m", "input": "one", "encoding_format": "base64"})
    assert [s.path for s in embedding.segments] == ["input"] and embedding.stream is False
    for bad in ({"model": "m", "prompt": 5}, {"model": "m", "prompt": []}, {"model": "m", "prompt": "x", "suffix": 1}):
        with pytest.raises(BadRequest):
            CompletionsRequest(bad)
    for bad in ({"model": "m"}, {"model": "m", "input": [1, "a"]}, {"model": "m", "input": "a", "encoding_format": "x"}):
        with pytest.raises(BadRequest):
            EmbeddingsRequest(bad)


class WordDecoder:
    """A stand-in tiktoken encoding: token i is WORDS[i]."""

    WORDS = ("Hello ", "Jane", " Doe", "!", " world")
    n_vocab = len(WORDS)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.WORDS[i] for i in ids)


def test_token_arrays_detokenize_refuse_or_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "find_decoder", lambda model: (WordDecoder(), ""))
    decoded = EmbeddingsRequest({"model": "m", "input": [[0, 1, 2], [4]]})
    assert [s.text for s in decoded.segments] == ["Hello Jane Doe", " world"]
    assert decoded.outbound(["Hello [PERSON_1]", " world"])["input"] == ["Hello [PERSON_1]", " world"]
    flat = CompletionsRequest({"model": "m", "prompt": [0, 1]})
    assert flat.body["prompt"] == "Hello Jane" and [s.path for s in flat.segments] == ["prompt"]
    with pytest.raises(BadRequest) as caught:
        EmbeddingsRequest({"model": "m", "input": [[0, 99]]})
    assert caught.value.param == "input"
    with pytest.raises(BadRequest) as caught:
        EmbeddingsRequest({"model": "m", "input": [1, 2]}, token_arrays_mode="refuse")
    assert caught.value.code == "token_ids_not_supported" and "check_embedding_ctx_length=False" in caught.value.message
    allowed = EmbeddingsRequest({"model": "m", "input": [1, 2]}, token_arrays_mode="allow")
    assert allowed.segments == [] and allowed.unscanned == "token_arrays_unscanned"
    assert allowed.outbound([])["input"] == [1, 2]


def test_no_encoding_file_means_no_decoder_and_no_download(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens, "_loaded", {})
    decoder, why = tokens.find_decoder("text-embedding-3-small")
    assert decoder is None and "cl100k_base" in why and "not on this machine" in why
    url, _ = tokens.ENCODING_FILES["cl100k_base"]
    import hashlib

    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not the real file")
    decoder, why = tokens.find_decoder("text-embedding-3-small")
    assert decoder is None and "checksum" in why
    assert tokens.find_decoder("no-such-model")[0] is None
    with pytest.raises(BadRequest) as caught:
        EmbeddingsRequest({"model": "text-embedding-3-small", "input": [[1, 2]]})
    assert "check_embedding_ctx_length=False" in caught.value.message


# --- answers -----------------------------------------------------------------------------------


def test_response_object_restored_everywhere_it_carries_text() -> None:
    payload = {
        "id": "resp_1", "object": "response", "instructions": "Help [PERSON_1]",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "[PERSON_2] asks"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi [PERSON_1]"},
                                            {"type": "refusal", "refusal": "not [PERSON_2]"}]},
            {"type": "function_call", "arguments": json.dumps({"to": "[PERSON_1]"})},
        ],
        "tools": [{"type": "function", "description": "for [PERSON_2]",
                   "parameters": {"properties": {"a": {"description": "[EMAIL_ADDRESS_1]"}}}}],
        "metadata": {"k": "[PERSON_2]"},
    }
    restored = answers().completion(payload)
    assert restored["instructions"] == 'Help Zoë "Z" Müller'
    assert restored["output"][0]["summary"][0]["text"] == "Bob asks"
    assert [p.get("text") or p.get("refusal") for p in restored["output"][1]["content"]] == [
        'Hi Zoë "Z" Müller', "not Bob"]
    assert json.loads(restored["output"][2]["arguments"]) == {"to": 'Zoë "Z" Müller'}
    assert restored["tools"][0]["description"] == "for Bob"
    assert restored["tools"][0]["parameters"]["properties"]["a"]["description"] == "zoe@corp.example.com"
    assert restored["metadata"] == {"k": "Bob"}


def test_completion_answers_and_stream() -> None:
    restorer = CompletionAnswers(MAPPING)
    assert restorer.completion({"choices": [{"index": 0, "text": "to [PERSON_2]"}]})["choices"][0]["text"] == "to Bob"
    stream = CompletionStreamRestorer(restorer)

    def chunk(index: int, text: str, finish: str | None = None) -> dict:
        return {"id": "c", "object": "text_completion", "choices": [{"index": index, "text": text, "finish_reason": finish}]}

    out = [stream.feed(chunk(0, "Hi [PERS")), stream.feed(chunk(1, "[EMAIL_ADD")), stream.feed(chunk(0, "ON_2]!", "stop"))]
    assert [c["choices"][0]["text"] for c in out] == ["Hi ", "", "Bob!"]
    final = stream.finish()
    assert final is not None and final["choices"] == [{"index": 1, "text": "[EMAIL_ADD", "logprobs": None,
                                                       "finish_reason": None}]


# --- the typed-event stream --------------------------------------------------------------------


def event(kind: str, sequence: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields, "sequence_number": sequence}


def run(restorer: ResponsesStreamRestorer, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [payload for e in events for payload, _ in restorer.feed(copy.deepcopy(e))]


def text_events(deltas: list[str], full: str) -> list[dict[str, Any]]:
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    message = {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": full}]}
    seq = iter(range(100))
    return [
        event("response.created", next(seq), response={"id": "resp_1", "output": []}),
        event("response.output_item.added", next(seq), output_index=0, item={**message, "content": []}),
        *[event("response.output_text.delta", next(seq), **ids, delta=d, logprobs=[], obfuscation="xx") for d in deltas],
        event("response.output_text.done", next(seq), **ids, text=full),
        event("response.content_part.done", next(seq), **ids, part=message["content"][0]),
        event("response.output_item.done", next(seq), output_index=0, item=message),
        event("response.completed", next(seq), response={"id": "resp_1", "output": [message]}),
    ]


def test_stream_holds_split_tokens_and_renumbers() -> None:
    deltas = ["Hello [PER", "SON", "_1", "] and [PERSON_2", "]!"]
    restorer = ResponsesStreamRestorer(answers())
    out = run(restorer, text_events(deltas, "".join(deltas)))
    sent = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert sent == ["Hello ", 'Zoë "Z" Müller and ', "Bob!"]  # wholly held deltas are dropped
    done = next(e for e in out if e["type"] == "response.output_text.done")
    assert "".join(sent) == done["text"] == out[-1]["response"]["output"][0]["content"][0]["text"]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert restorer.finished and restorer.fault is None


def test_stream_releases_a_held_tail_as_one_more_delta_before_done() -> None:
    deltas = ["Bye [PERSON_", "2"]  # the model stopped inside a token: it resolves at the end
    out = run(ResponsesStreamRestorer(answers()), text_events(deltas, "".join(deltas)))
    kinds = [e["type"] for e in out]
    extra = out[kinds.index("response.output_text.done") - 1]
    assert extra["type"] == "response.output_text.delta" and extra["delta"] == "Bob"
    assert "obfuscation" not in extra and extra["logprobs"] == []
    assert "".join(e["delta"] for e in out if "delta" in e) == "Bye Bob"
    assert [e["sequence_number"] for e in out] == list(range(len(out)))


def test_stream_function_call_arguments_re_escaped() -> None:
    arguments = json.dumps({"to": "[PERSON_1]", "cc": "[PERSON_2]"})
    ids = {"item_id": "fc_1", "output_index": 1}
    events = [event("response.function_call_arguments.delta", i, **ids, delta=arguments[i * 5 : i * 5 + 5])
              for i in range(len(arguments) // 5 + 1)]
    events.append(event("response.function_call_arguments.done", 99, **ids, arguments=arguments))
    out = run(ResponsesStreamRestorer(answers()), events)
    streamed = "".join(e["delta"] for e in out if "delta" in e)
    assert streamed == out[-1]["arguments"]
    assert json.loads(streamed) == {"to": 'Zoë "Z" Müller', "cc": "Bob"}


def test_stream_without_mapping_passes_events_unchanged_and_remembers_the_id() -> None:
    vault = MemoryVault()
    restorer = ResponsesStreamRestorer(answers({}, vault=vault))
    events = text_events(["[PERSON_1]"], "[PERSON_1]")
    emitted = [pair for e in events for pair in restorer.feed(copy.deepcopy(e))]
    assert [payload for payload, _ in emitted] == events and not any(changed for _, changed in emitted)
    assert vault.get("responses", "resp_1") == {"restorable": {}}


def test_upstream_error_event_ends_the_stream_with_a_fault() -> None:
    restorer = ResponsesStreamRestorer(answers())
    out = run(restorer, [event("error", 0, code="server_error", message="failed for [PERSON_2]")])
    assert out[0]["message"] == "failed for Bob" and restorer.finished and restorer.fault == "upstream_stream_error"


# --- the pipeline with earlier turns' tokens ---------------------------------------------------

POLICY = """
name: responses-test
detection:
  ner: none
  recognizers:
    - {name: names, entity: PERSON, deny_list: ["Jane Doe", "Bob Stone"]}
default_action: pseudonymize
"""


def test_prior_tokens_are_reused_protected_and_never_handed_out_again() -> None:
    from pathlib import Path

    from privacy_proxy.pipeline import Exchange, prepare
    from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
    from privacy_proxy.runtime import Runtime

    runtime = Runtime.build(LoadedPolicy(parse_policy(POLICY), Path("r.yaml"), "0" * 64), secret=b"k" * 32)
    # Turn 1 (kept upstream) named Alice Walker, whom this policy's detector would not find again.
    request = ResponsesRequest({"model": "m", "input": "Alice Walker, Jane Doe and Bob Stone met.",
                                "previous_response_id": "resp_1"})
    vault = MemoryVault()
    vault.put("responses", "resp_1", {"restorable": {"[PERSON_1]": "Alice Walker", "[PERSON_2]": "Jane Doe"}})
    request.load_prior(vault)
    exchange = Exchange(request_id="r", route="/v1/responses", runtime=runtime)
    sent = json.loads(prepare(exchange, request))
    assert sent["input"] == "[PERSON_1], [PERSON_2] and [PERSON_3] met."
    assert exchange.mapping.restorable == {"[PERSON_3]": "Bob Stone"} and exchange.leak_guard == "pass"


def test_mappings_are_kept_per_client_key() -> None:
    from privacy_proxy.access import CURRENT_CLIENT, ClientKey

    vault = MemoryVault()
    token = CURRENT_CLIENT.set(ClientKey("team-a", b"\0" * 32, None))
    try:
        answers(vault=vault).completion({"id": "resp_a", "output": []})
        mine = ResponsesRequest({"model": "m", "input": "x", "previous_response_id": "resp_a"})
        mine.load_prior(vault)
        assert mine.prior == MAPPING
    finally:
        CURRENT_CLIENT.reset(token)
    token = CURRENT_CLIENT.set(ClientKey("team-b", b"\1" * 32, None))
    try:
        theirs = ResponsesRequest({"model": "m", "input": "x", "previous_response_id": "resp_a"})
        with pytest.raises(BadRequest):  # team-b cannot continue (and restore) team-a's conversation
            theirs.load_prior(vault)
    finally:
        CURRENT_CLIENT.reset(token)
