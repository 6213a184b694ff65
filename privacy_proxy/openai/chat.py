"""`/v1/chat/completions`: which fields carry text, how to write them back, how to restore answers.

Request side: `ChatRequest(body)` validates the shape, lists every text `Segment` in conversation
order (tool descriptions, then messages), and `outbound(texts)` writes rewritten texts back.
Response side: `AnswerRestorer.completion` rewrites a whole answer; `ChatStreamRestorer` does the same
for a stream of chunk payloads, holding back per choice only what could be a cut token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from privacy_proxy.errors import BadRequest, PolicyViolation
from sanitizers.restore import Restorer, json_string_escape

TEXT_PART_TYPES = {"text", "input_text", "output_text", "refusal"}
TEXT_MESSAGE_FIELDS = ("content", "refusal", "reasoning_content")


@dataclass(frozen=True, slots=True)
class Segment:
    path: str  # where the text lives, e.g. messages[2].content[0].text — never the text itself
    text: str


def _json_text(value: str) -> Any | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


@dataclass
class ChatRequest:
    body: dict[str, Any]
    non_text_parts: str = "block"
    segments: list[Segment] = field(default_factory=list)
    non_text_paths: list[str] = field(default_factory=list)
    _slots: list[tuple[Any, Any]] = field(default_factory=list)
    _json_docs: list[tuple[dict[str, Any], str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        body = self.body
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequest("'model' is required and must be a string", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is required and must be a non-empty array", param="messages")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        if "n" in body and (not isinstance(body["n"], int) or isinstance(body["n"], bool) or body["n"] < 1):
            raise BadRequest("'n' must be a positive integer", param="n")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise BadRequest("'tools' must be an array", param="tools")
            for index, tool in enumerate(tools):
                self._tool(tool, f"tools[{index}]")
        for index, message in enumerate(messages):
            self._message(message, f"messages[{index}]")
        for key in ("user", "prediction", "metadata"):
            if key in body:
                self._free_text(body, key, key)
        if self.non_text_paths and self.non_text_parts == "block":
            raise PolicyViolation(
                "this request has image, audio or file parts, which cannot be scanned for personal data; "
                "the policy blocks them (content.non_text_parts)",
                reason="non_text_content",
            )

    # -- extraction ---------------------------------------------------------------------------
    def _add(self, container: Any, key: Any, path: str) -> None:
        text = container[key]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # "\ud800" is a legal JSON escape but no character: detectors and upstreams choke on it.
            raise BadRequest(f"'{path}' contains an unpaired UTF-16 surrogate", param=path) from None
        self._slots.append((container, key))
        self.segments.append(Segment(path, text))

    def _tool(self, tool: Any, path: str) -> None:
        if not isinstance(tool, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        function = tool.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("description"), str):
                self._add(function, "description", f"{path}.function.description")
            self._schema_descriptions(function.get("parameters"), f"{path}.function.parameters")

    def _schema_descriptions(self, schema: Any, path: str) -> None:
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "description" and isinstance(value, str):
                    self._add(schema, key, f"{path}.description")
                else:
                    self._schema_descriptions(value, f"{path}.{key}")
        elif isinstance(schema, list):
            for index, value in enumerate(schema):
                self._schema_descriptions(value, f"{path}[{index}]")

    def _message(self, message: Any, path: str) -> None:
        if not isinstance(message, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"'{path}.role' is required and must be a string", param=f"{path}.role")
        if isinstance(message.get("name"), str):
            self._add(message, "name", f"{path}.name")
        for key in TEXT_MESSAGE_FIELDS:
            value = message.get(key)
            if value is None:
                continue
            if isinstance(value, str):
                self._add(message, key, f"{path}.{key}")
            elif isinstance(value, list) and key == "content":
                self._parts(message, value, f"{path}.content")
            else:
                raise BadRequest(f"'{path}.{key}' must be a string or an array of parts", param=f"{path}.{key}")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise BadRequest(f"'{path}.tool_calls' must be an array", param=f"{path}.tool_calls")
            for index, call in enumerate(tool_calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise BadRequest(f"'{path}.tool_calls[{index}].function' must be an object")
                self._arguments(function, f"{path}.tool_calls[{index}].function")
        if isinstance(message.get("function_call"), dict):
            self._arguments(message["function_call"], f"{path}.function_call")

    def _parts(self, message: dict[str, Any], parts: list[Any], path: str) -> None:
        kept = []
        for index, part in enumerate(parts):
            part_path = f"{path}[{index}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"'{part_path}' must be an object with a 'type'", param=part_path)
            if part["type"] in TEXT_PART_TYPES:
                key = "refusal" if part["type"] == "refusal" else "text"
                if not isinstance(part.get(key), str):
                    raise BadRequest(f"'{part_path}.{key}' must be a string", param=f"{part_path}.{key}")
                self._add(part, key, f"{part_path}.{key}")
                kept.append(part)
            else:
                self.non_text_paths.append(part_path)
                if self.non_text_parts != "drop":
                    kept.append(part)
        if len(kept) != len(parts):
            message["content"] = kept

    def _arguments(self, function: dict[str, Any], path: str) -> None:
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            return
        parsed = _json_text(arguments)
        if parsed is None:
            self._add(function, "arguments", f"{path}.arguments")
            return
        # JSON-aware: scan the string values, then re-serialize so the arguments stay valid JSON.
        self._json_docs.append((function, "arguments", parsed))
        self._json_strings(parsed, f"{path}.arguments")

    def _json_strings(self, node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            child = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
            if isinstance(value, str):
                self._add(node, key, child)
            else:
                self._json_strings(value, child)

    def _free_text(self, container: dict[str, Any], key: str, path: str) -> None:
        value = container[key]
        if isinstance(value, str):
            self._add(container, key, path)
        elif isinstance(value, dict):
            for sub_key in list(value):
                self._free_text(value, sub_key, f"{path}.{sub_key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    self._add(value, index, f"{path}[{index}]")
                elif isinstance(item, (dict, list)):
                    self._free_text(value, index, f"{path}[{index}]")  # type: ignore[arg-type]

    # -- write-back ---------------------------------------------------------------------------
    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    def outbound(self, texts: list[str]) -> dict[str, Any]:
        """The body to send upstream; mutates the parsed request in place (it is ours alone)."""
        for (container, key), text in zip(self._slots, texts, strict=True):
            container[key] = text
        for function, key, parsed in self._json_docs:
            function[key] = json.dumps(parsed, ensure_ascii=False)
        return self.body


# -- responses --------------------------------------------------------------------------------
class AnswerRestorer:
    """Restores answers of one request: plain text, and text inside JSON strings (tool arguments)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.text = Restorer(mapping)
        self._json: Restorer | None = None

    @property
    def json(self) -> Restorer:
        # Built on first use: most answers carry no tool calls, and each restorer compiles a pattern.
        if self._json is None:
            self._json = Restorer(self.mapping, escape=json_string_escape)
        return self._json

    def __bool__(self) -> bool:
        return bool(self.text)

    def completion(self, payload: Any) -> Any:
        """Restore a non-streamed `chat.completion` in place: content, refusal, tool-call arguments."""
        if not self or not isinstance(payload, dict):
            return payload
        for choice in payload.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            for key in TEXT_MESSAGE_FIELDS:
                if isinstance(message.get(key), str):
                    message[key] = self.text.restore(message[key])
            for function in _functions(message):
                function["arguments"] = self.json.restore(function["arguments"])
        return payload


def _functions(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool-call / function-call objects of a message or delta that carry string arguments."""
    calls = [call.get("function") for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    calls.append(message.get("function_call"))
    return [f for f in calls if isinstance(f, dict) and isinstance(f.get("arguments"), str)]


class ChatStreamRestorer:
    """Sans-IO: feed each parsed `chat.completion.chunk`, get it back restored (in place).

    One streaming restorer per (choice, field) and per (choice, tool call), so tokens split across
    any number of chunks are restored and choices never mix. A choice's held-back tail is released
    in the chunk that carries its finish_reason; `finish()` releases what is left if the upstream
    ended without one (a cut stream), as a last chunk of its own.
    """

    def __init__(self, answers: AnswerRestorer) -> None:
        self.answers = answers
        self._text: dict[tuple[int, str], Any] = {}
        self._arguments: dict[tuple[int, int], Any] = {}
        self._last: dict[str, Any] = {}
        # Whether the last `feed` changed the chunk; if not, the caller may relay the upstream's bytes.
        self.changed = False

    def feed(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.changed = False
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return chunk
        self._last = chunk
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            # A delta holds one or two keys: walk those, not every field name it might have.
            for key, value in list(delta.items()):
                if key in TEXT_MESSAGE_FIELDS and isinstance(value, str):
                    self._rewrite(delta, key, self._stream(self._text, (index, key), self.answers.text))
                elif key == "tool_calls" and isinstance(value, list):
                    for call in value:
                        function = call.get("function") if isinstance(call, dict) else None
                        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                            stream = self._stream(self._arguments, (index, call.get("index", 0)), self.answers.json)
                            self._rewrite(function, "arguments", stream)
            if choice.get("finish_reason") is not None and self._release(index, delta):
                self.changed = True
        return chunk

    def _rewrite(self, container: dict[str, Any], key: str, stream: Any) -> None:
        original = container[key]
        restored = stream.feed(original)
        if restored != original:
            container[key] = restored
            self.changed = True

    def finish(self) -> dict[str, Any] | None:
        """A final chunk with every tail still held (the upstream ended without finish_reason)."""
        indexes = sorted({i for i, _ in self._text} | {i for i, _ in self._arguments})
        choices = []
        for index in indexes:
            delta: dict[str, Any] = {}
            self._release(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        template = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return {**template, "choices": choices}

    @staticmethod
    def _stream(table: dict[Any, Any], key: Any, restorer: Restorer) -> Any:
        stream = table.get(key)
        if stream is None:
            stream = table[key] = restorer.stream()
        return stream

    def _release(self, index: int, delta: dict[str, Any]) -> bool:
        """Move the choice's held tails into `delta`; True if anything was added."""
        released = False
        for key in [k for k in self._text if k[0] == index]:
            tail = self._text.pop(key).flush()
            if tail:
                delta[key[1]] = (delta.get(key[1]) or "") + tail
                released = True
        for key in [k for k in self._arguments if k[0] == index]:
            tail = self._arguments.pop(key).flush()
            if not tail:
                continue
            released = True
            calls = delta.setdefault("tool_calls", [])
            call = next((c for c in calls if isinstance(c, dict) and c.get("index", 0) == key[1]), None)
            if call is None:
                call = {"index": key[1], "function": {"arguments": ""}}
                calls.append(call)
            function = call.setdefault("function", {})
            function["arguments"] = (function.get("arguments") or "") + tail
        return released
