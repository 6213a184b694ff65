"""Answers of the fake upstream for /v1/responses, /v1/completions and /v1/embeddings.

Pure builders (no I/O): `FakeUpstream` (fake_upstream.py) picks the behaviour, calls these, and sends
the result. Each route echoes its input, so a test can check restoration against what it sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from typing import Any, AnyStr

SUPPORTED_FAULTS = frozenset({"garbage", "truncated", "error_event", "reset"})


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def pieces(rng: random.Random, seq: AnyStr, most: int = 7) -> list[AnyStr]:
    """``seq`` cut into consecutive pieces of 1..``most`` items."""
    out, i = [], 0
    while i < len(seq):
        step = rng.randint(1, most)
        out.append(seq[i : i + step])
        i += step
    return out


def faulty(events: list[bytes], fault: str | None, error_event: bytes) -> list[bytes]:
    """``events`` as a broken upstream sends them (``Behaviour.stream_fault``)."""
    if fault == "garbage":
        return events[:1] + [b"data: {this is not json\n\n"]
    if fault == "error_event":
        return events[: max(1, len(events) // 3)] + [error_event]
    if fault in ("truncated", "reset"):
        half = max(1, (len(events) - 2) // 2)  # well before the finish chunks
        return events[:half] + [events[half][: len(events[half]) // 2]]
    return events


# -- /v1/responses ------------------------------------------------------------------------------
def _part_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def responses_echo(payload: dict[str, Any]) -> str:
    """The text to echo: the input string, else the last user message, else the last tool output."""
    value = payload.get("input")
    if isinstance(value, str):
        return value
    items = [item for item in value or [] if isinstance(item, dict)]
    users = [item for item in items if item.get("role") == "user"]
    if users:
        return _part_text(users[-1].get("content"))
    outputs = [item for item in items if item.get("type") == "function_call_output"]
    return _part_text(outputs[-1].get("output")) if outputs else ""


def input_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input as the stored items GET /v1/responses/{id}/input_items lists (newest first)."""
    value = payload.get("input")
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}] \
        if isinstance(value, str) else [dict(item) for item in value or [] if isinstance(item, dict)]
    for index, item in enumerate(items):
        item.setdefault("id", f"item_{index}")
    return items[::-1]


def responses_tool(payload: dict[str, Any], forced: bool | None) -> str | None:
    names = [t.get("name") for t in payload.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if forced is False or not names or (forced is None and payload.get("tool_choice") == "none"):
        return None
    return str(names[0])


def response_object(
    payload: dict[str, Any], k: int, text: str, tool: str | None, call_id: str, incomplete: bool
) -> dict[str, Any]:
    """The finished `response` object: a message echoing `text`, then a function call when `tool`.
    `k` numbers responses for the fake's whole life (ids stay unique across resets)."""
    output: list[dict[str, Any]] = [{
        "type": "message", "id": f"msg_fake{k}", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }]
    if tool:
        output.append({"type": "function_call", "id": f"fc_fake{k}", "call_id": call_id, "name": tool,
                       "arguments": dumps({"text": text}), "status": "completed"})
    words = len(text.split())
    return {
        "id": f"resp_fake{k}", "object": "response", "created_at": 1_700_000_000 + k,
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None, "model": payload.get("model") or "fake-model", "output": output,
        "instructions": payload.get("instructions"), "tools": payload.get("tools") or [],
        "tool_choice": payload.get("tool_choice") or "auto", "parallel_tool_calls": True,
        "previous_response_id": payload.get("previous_response_id"), "store": payload.get("store", True),
        "metadata": payload.get("metadata") or {}, "user": payload.get("user"), "temperature": 1.0,
        "top_p": 1.0, "truncation": "disabled", "text": {"format": {"type": "text"}},
        "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": words,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5 + words},
    }


def response_events(response: dict[str, Any], rng: random.Random, fault: str | None) -> list[bytes]:
    """The typed SSE events OpenAI sends for `response`, text and arguments in small random deltas."""
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        payload = {"type": kind, **fields, "sequence_number": sequence}
        sequence += 1
        return f"event: {kind}\ndata: {dumps(payload)}\n\n".encode()

    started = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events = [event("response.created", response=started), event("response.in_progress", response=started)]
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(event("response.output_item.added", output_index=index,
                                item={**item, "status": "in_progress", "content": []}))
            events.append(event("response.content_part.added", **ids,
                                part={"type": "output_text", "text": "", "annotations": []}))
            events += [event("response.output_text.delta", **ids, delta=p, logprobs=[]) for p in pieces(rng, text)]
            events.append(event("response.output_text.done", **ids, text=text, logprobs=[]))
            events.append(event("response.content_part.done", **ids, part=item["content"][0]))
        else:
            ids = {"item_id": item["id"], "output_index": index}
            events.append(event("response.output_item.added", output_index=index,
                                item={**item, "arguments": "", "status": "in_progress"}))
            events += [event("response.function_call_arguments.delta", **ids, delta=p)
                       for p in pieces(rng, item["arguments"])]
            events.append(event("response.function_call_arguments.done", **ids, arguments=item["arguments"],
                                name=item["name"]))
        events.append(event("response.output_item.done", output_index=index, item=item))
    terminal = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    events.append(event(terminal, response=response))
    error = event("error", code="server_error", message="The server had an error while processing your request.",
                  param=None)
    return faulty(events, fault, error)


# -- /v1/completions ----------------------------------------------------------------------------
def completion_prompts(prompt: Any) -> list[str]:
    """The prompts as texts (token arrays are described, not decoded: the fake has no vocabulary)."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [f"<{len(prompt)} token ids>"]
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return [f"<{len(p)} token ids>" for p in prompt]
    raise ValueError("prompt")


def completion_choices(prompts: list[str], n: int, answer: str | None, echo: bool, cut: int | None) -> list[dict]:
    choices = []
    for i, prompt in enumerate(prompts):
        for j in range(n):
            text, finish = (prompt if answer is None else answer), "stop"
            if cut is not None and len(text) > cut:
                text, finish = text[:cut], "length"
            choices.append({"text": (prompt + text) if echo else text, "index": i * n + j, "logprobs": None,
                            "finish_reason": finish})
    return choices


def completion_events(base: dict[str, Any], choices: list[dict], rng: random.Random, fault: str | None) -> list[bytes]:
    queues = []
    for choice in choices:
        steps = [{**choice, "text": p, "finish_reason": None} for p in pieces(rng, choice["text"])]
        steps.append({**choice, "text": "", "finish_reason": choice["finish_reason"]})
        queues.append(steps)
    events = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])  # interleave the choices
        events.append(f"data: {dumps({**base, 'choices': [queue.pop(0)]})}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    error = {"error": {"message": "The server had an error.", "type": "server_error", "param": None, "code": None}}
    return faulty(events, fault, f"data: {dumps(error)}\n\n".encode())


# -- /v1/embeddings -----------------------------------------------------------------------------
def embedding_vector(item: Any, dimensions: int = 8) -> list[float]:
    """A deterministic vector for one input (text or token ids), exact in float32."""
    seed = hashlib.sha256(dumps(item).encode()).digest()
    values = [(byte - 128) / 128 for byte in (seed * (dimensions // len(seed) + 1))[:dimensions]]
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *values)))


def embeddings_body(payload: dict[str, Any]) -> dict[str, Any]:
    value = payload.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, int) for v in value)):
        items = [value]
    elif isinstance(value, list) and value:
        items = list(value)
    else:
        raise ValueError("input")
    dimensions = int(payload.get("dimensions") or 8)
    data = []
    for index, item in enumerate(items):
        vector = embedding_vector(item, dimensions)
        if payload.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(item) if isinstance(item, list) else len(item.split()) for item in items)
    return {"object": "list", "data": data, "model": payload.get("model") or "fake-model",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# -- /v1/messages (Anthropic) -------------------------------------------------------------------
def messages_echo(payload: dict[str, Any]) -> str:
    """The last user message's text (its text blocks, or its tool results' text)."""
    users = [m for m in payload.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, list):
        results = [_part_text(b.get("content")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        return _part_text(content) or "".join(results)
    return content if isinstance(content, str) else ""


def messages_tool(payload: dict[str, Any], forced: bool | None) -> str | None:
    names = [t.get("name") for t in payload.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    if forced is False or not names:
        return None
    return str(names[0])


def message_object(payload: dict[str, Any], k: int, text: str, tool: str | None, cut: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if tool:
        content.append({"type": "tool_use", "id": f"toolu_fake{k}", "name": tool, "input": {"text": text}})
    return {
        "id": f"msg_fake{k}", "type": "message", "role": "assistant", "model": payload.get("model") or "fake",
        "content": content, "stop_reason": "max_tokens" if cut else ("tool_use" if tool else "end_turn"),
        "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": len(text.split())},
    }


def message_events(message: dict[str, Any], rng: random.Random, fault: str | None) -> list[bytes]:
    def event(kind: str, **fields: Any) -> bytes:
        return f"event: {kind}\ndata: {dumps({'type': kind, **fields})}\n\n".encode()

    started = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
    events = [event("message_start", message=started), event("ping")]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
            events += [event("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
                       for p in pieces(rng, block["text"])]
        else:
            events.append(event("content_block_start", index=index, content_block={**block, "input": {}}))
            events += [event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": p})
                       for p in pieces(rng, dumps(block["input"]))]
        events.append(event("content_block_stop", index=index))
    events.append(event("message_delta", delta={"stop_reason": message["stop_reason"], "stop_sequence": None},
                        usage={"output_tokens": message["usage"]["output_tokens"]}))
    events.append(event("message_stop"))
    error = event("error", error={"type": "api_error", "message": "Internal server error"})
    return faulty(events, fault, error)
