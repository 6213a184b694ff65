"""`/v1/messages`: the Anthropic Messages API, for upstreams that serve it (Anthropic, or a gateway).

Scanned: `system` (string or text blocks), message `content` (string, `text` blocks, `document`
blocks with a plain-text source, `tool_result` content), `tool_use.input` (a JSON object: its string
values), tool `description`s and their `input_schema` descriptions, `metadata` values. Image and
other documents follow `content.non_text_parts`. `thinking` blocks are the upstream's own signed
reasoning over already-scanned text: relayed unchanged (a changed one fails its signature) and not
restored in answers; the leak guard still checks them. Other block types are refused (400).

Answers: `text` blocks and `tool_use.input` string values are restored, whole and streamed
(`text_delta`, `input_json_delta` per content block, a held tail sent before `content_block_stop`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from privacy_proxy.errors import BadRequest, ProxyError
from privacy_proxy.openai.answers import Answers
from privacy_proxy.openai.request import TextRequest
from sanitizers.restore import StreamRestorer

NON_TEXT_BLOCKS = frozenset({"image", "document"})
UNSCANNED_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # upstream-made and signed: relayed as is
SUPPORTED_BLOCKS = ("text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking")


class MessagesRequest(TextRequest):
    def __init__(self, body: Any, non_text_parts: str = "block") -> None:
        super().__init__(body, non_text_parts=non_text_parts)
        body = self.body
        self.require_model()
        self.check_flag("stream")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' is required and must be a non-empty array", param="messages")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise BadRequest("'tools' must be an array", param="tools")
            for index, tool in enumerate(tools):
                if not isinstance(tool, dict):
                    raise BadRequest(f"'tools[{index}]' must be an object", param=f"tools[{index}]")
                if isinstance(tool.get("description"), str):
                    self.add(tool, "description", f"tools[{index}].description")
                self.add_schema_descriptions(tool.get("input_schema"), f"tools[{index}].input_schema")
        if "system" in body and body["system"] is not None:
            self._text_or_blocks(body, "system", "system")
        for index, message in enumerate(messages):
            path = f"messages[{index}]"
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise BadRequest(f"'{path}' must be an object with a string 'role'", param=f"{path}.role")
            self._text_or_blocks(message, "content", f"{path}.content")
        if "metadata" in body:
            self.add_free_text(body, "metadata", "metadata")
        self.check_non_text()

    def _text_or_blocks(self, container: dict[str, Any], key: str, path: str) -> None:
        value = container.get(key)
        if isinstance(value, str):
            self.add(container, key, path)
        elif isinstance(value, list):
            kept = [block for index, block in enumerate(value) if self._block(block, f"{path}[{index}]")]
            if len(kept) != len(value):
                container[key] = kept
        else:
            raise BadRequest(f"'{path}' must be a string or an array of content blocks", param=path)

    def _block(self, block: Any, path: str) -> bool:
        """Register one content block; False when the policy drops it."""
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(f"'{path}' must be an object with a 'type'", param=path)
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise BadRequest(f"'{path}.text' must be a string", param=f"{path}.text")
            self.add(block, "text", f"{path}.text")
        elif kind == "document" and isinstance(block.get("source"), dict) and block["source"].get("type") == "text":
            if isinstance(block["source"].get("data"), str):
                self.add(block["source"], "data", f"{path}.source.data")
        elif kind in NON_TEXT_BLOCKS:
            self.non_text_paths.append(path)
            return self.non_text_parts != "drop"
        elif kind == "tool_use":
            if not isinstance(block.get("input"), dict):
                raise BadRequest(f"'{path}.input' must be an object", param=f"{path}.input")
            self.add_json_value(block, "input", f"{path}.input")
        elif kind == "tool_result":
            if block.get("content") is not None:
                self._text_or_blocks(block, "content", f"{path}.content")
        elif kind not in UNSCANNED_BLOCKS:
            raise BadRequest(
                f"'{path}' is a content block of a type privacy-proxy does not scan, so it is refused rather "
                f"than sent unscanned; supported: {', '.join(SUPPORTED_BLOCKS)}",
                param=f"{path}.type",
                code="unsupported_content",
            )
        return True


class MessagesAnswers(Answers):
    """Restores `message` answers: text blocks and the string values of tool_use inputs."""

    def completion(self, payload: Any) -> Any:
        if self and isinstance(payload, dict):
            for block in payload.get("content") or []:
                self.block(block)
        return payload

    def block(self, block: Any) -> None:
        if not isinstance(block, dict):
            return
        if block.get("type") == "text":
            self.restore_field(block, "text")
        elif block.get("type") == "tool_use":
            self.restore_strings(block, "input")


Emitted = tuple[dict[str, Any], bool]
# Delta type → (the field with the text, whether it is JSON text).
DELTAS = {"text_delta": ("text", False), "input_json_delta": ("partial_json", True)}


class MessagesStreamRestorer:
    """Sans-IO: feed each parsed Messages stream event, get back the events to send.

    One streaming restorer per content block; a delta held back whole is dropped, and the tail still
    held at `content_block_stop` (or at the message's end) goes out as one more delta just before it.
    """

    def __init__(self, answers: MessagesAnswers) -> None:
        self.answers = answers
        self._streams: dict[Any, StreamRestorer] = {}
        self._templates: dict[Any, dict[str, Any]] = {}
        self.finished = False
        self.fault: str | None = None

    def feed(self, event: dict[str, Any]) -> list[Emitted]:
        kind = event.get("type") if isinstance(event.get("type"), str) else ""
        answers = self.answers
        answers.changed = False
        emitted: list[Emitted] = []
        if kind == "content_block_delta":
            if not self._delta(event):
                return []
        else:
            index = event.get("index")
            if kind == "content_block_stop":
                emitted += self._release(lambda key: key == index)
            elif kind in ("message_stop", "error"):
                emitted += self._release(lambda key: True)
            if answers:
                if kind == "message_start" and isinstance(event.get("message"), dict):
                    answers.completion(event["message"])
                elif kind == "content_block_start":
                    answers.block(event.get("content_block"))
                elif kind == "error" and isinstance(event.get("error"), dict):
                    answers.restore_field(event["error"], "message")
            if kind in ("message_stop", "error"):
                self.finished = True
                self.fault = "upstream_stream_error" if kind == "error" else None
        emitted.append((event, answers.changed))
        return emitted

    def finish(self) -> list[Emitted]:
        return self._release(lambda key: True)

    def error_payload(self, exc: ProxyError) -> dict[str, Any]:
        """The proxy's own error in Anthropic's stream shape (the anthropic SDK raises on it)."""
        return {"type": "error", "error": exc.body()["error"]}

    def _delta(self, event: dict[str, Any]) -> bool:
        delta = event.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if not self.answers or kind not in DELTAS:
            return True
        field, is_json = DELTAS[kind]
        text = delta.get(field)
        if not isinstance(text, str):
            return True
        index = event.get("index")
        stream = self._streams.get(index)
        if stream is None:
            stream = self._streams[index] = (self.answers.json if is_json else self.answers.text).stream()
        self._templates[index] = event
        restored = stream.feed(text)
        if restored != text:
            delta[field] = restored
            self.answers.changed = True
        return bool(restored) or not text

    def _release(self, closes: Callable[[Any], bool]) -> list[Emitted]:
        released: list[Emitted] = []
        for index in [index for index in self._streams if closes(index)]:
            tail = self._streams.pop(index).flush()
            template = self._templates.pop(index, None)
            if tail and template is not None:
                delta = dict(template["delta"])
                delta[DELTAS[delta["type"]][0]] = tail
                released.append(({**template, "delta": delta}, True))
        return released
