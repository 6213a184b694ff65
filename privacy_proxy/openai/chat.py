"""`/v1/chat/completions`: which fields carry text, how to write them back, how to restore answers.

Request side: `ChatRequest(body)` validates the shape and lists every text `Segment` in conversation
order (tool descriptions, then messages); `outbound(texts)` (from `TextRequest`) writes them back.
Response side: `AnswerRestorer.completion` rewrites a whole answer; `ChatStreamRestorer` does the same
for a stream of chunk payloads, holding back per choice only what could be a cut token.
"""

from __future__ import annotations

from typing import Any

from privacy_proxy.errors import BadRequest
from privacy_proxy.openai.answers import Answers, ChoiceStreamRestorer
from privacy_proxy.openai.request import Segment, TextRequest
from sanitizers.restore import Restorer

__all__ = ["AnswerRestorer", "ChatRequest", "ChatStreamRestorer", "Segment"]

TEXT_PART_TYPES = {"text", "input_text", "output_text", "refusal"}
TEXT_MESSAGE_FIELDS = ("content", "refusal", "reasoning_content")


class ChatRequest(TextRequest):
    supports_collaboration = True  # split and local answering (privacy_proxy.strategies) know this shape

    def __init__(self, body: Any, non_text_parts: str = "block") -> None:
        super().__init__(body, non_text_parts=non_text_parts)
        body = self.body
        self.require_model()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is required and must be a non-empty array", param="messages")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise BadRequest("'stream' must be a boolean", param="stream")
        self.check_positive_int("n")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise BadRequest("'tools' must be an array", param="tools")
            for index, tool in enumerate(tools):
                self._tool(tool, f"tools[{index}]")
        for index, message in enumerate(messages):
            self._role = (message.get("role") if isinstance(message, dict) else None, index)
            self._message(message, f"messages[{index}]")
        self._role = (None, None)
        for key in ("user", "prediction", "metadata"):
            if key in body:
                self.add_free_text(body, key, key)
        self.check_non_text()

    def _tool(self, tool: Any, path: str) -> None:
        if not isinstance(tool, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        function = tool.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("description"), str):
                self.add(function, "description", f"{path}.function.description")
            self.add_schema_descriptions(function.get("parameters"), f"{path}.function.parameters")

    def _message(self, message: Any, path: str) -> None:
        if not isinstance(message, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"'{path}.role' is required and must be a string", param=f"{path}.role")
        if isinstance(message.get("name"), str):
            self.add(message, "name", f"{path}.name")
        for key in TEXT_MESSAGE_FIELDS:
            value = message.get(key)
            if value is None:
                continue
            if isinstance(value, str):
                self.add(message, key, f"{path}.{key}")
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
                self.add(part, key, f"{part_path}.{key}")
                kept.append(part)
            else:
                self.non_text_paths.append(part_path)
                if self.non_text_parts != "drop":
                    kept.append(part)
        if len(kept) != len(parts):
            message["content"] = kept

    def _arguments(self, function: dict[str, Any], path: str) -> None:
        if isinstance(function.get("arguments"), str):
            self.add_json_text(function, "arguments", f"{path}.arguments")


# -- answers ----------------------------------------------------------------------------------
class AnswerRestorer(Answers):
    """Restores chat answers: message text, refusal, tool-call arguments (JSON-escaped)."""

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


class ChatStreamRestorer(ChoiceStreamRestorer):
    """Sans-IO: feed each parsed `chat.completion.chunk`, get it back restored (in place).

    One streaming restorer per (choice, field) and per (choice, tool call), so tokens split across
    any number of chunks are restored and choices never mix.
    """

    def __init__(self, answers: AnswerRestorer) -> None:
        super().__init__()
        self.answers = answers
        self._text: dict[tuple[int, str], Any] = {}
        self._arguments: dict[tuple[int, int], Any] = {}

    def _feed_choice(self, index: int, choice: dict[str, Any]) -> None:
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

    def _rewrite(self, container: dict[str, Any], key: str, stream: Any) -> None:
        original = container[key]
        restored = stream.feed(original)
        if restored != original:
            container[key] = restored
            self.changed = True

    def _held_indexes(self) -> list[int]:
        return sorted({i for i, _ in self._text} | {i for i, _ in self._arguments})

    def _empty_choice(self, index: int) -> dict[str, Any]:
        return {"index": index, "delta": {}, "finish_reason": None}

    @staticmethod
    def _stream(table: dict[Any, Any], key: Any, restorer: Restorer) -> Any:
        stream = table.get(key)
        if stream is None:
            stream = table[key] = restorer.stream()
        return stream

    def _release(self, index: int, choice: dict[str, Any]) -> bool:
        """Move the choice's held tails into its delta; True if anything was added."""
        delta = choice["delta"]
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
