"""`/v1/responses` streams: `event:`-typed events restored one by one (see `ResponsesStreamRestorer`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from privacy_proxy.errors import ProxyError
from privacy_proxy.openai.responses import ResponsesAnswers
from sanitizers.restore import StreamRestorer

# Delta event → (text stream family, the event's sub-index field, whether the text is JSON).
DELTAS: dict[str, tuple[str, str | None, bool]] = {
    "response.output_text.delta": ("text", "content_index", False),
    "response.refusal.delta": ("refusal", "content_index", False),
    "response.reasoning_text.delta": ("reasoning", "content_index", False),
    "response.reasoning_summary_text.delta": ("summary", "summary_index", False),
    "response.function_call_arguments.delta": ("arguments", None, True),
    "response.custom_tool_call_input.delta": ("custom_input", None, False),
    "response.mcp_call_arguments.delta": ("mcp_arguments", None, True),
}
# Done event → (family, sub-index field, the field holding the whole text).
DONES: dict[str, tuple[str, str | None, str]] = {
    "response.output_text.done": ("text", "content_index", "text"),
    "response.refusal.done": ("refusal", "content_index", "refusal"),
    "response.reasoning_text.done": ("reasoning", "content_index", "text"),
    "response.reasoning_summary_text.done": ("summary", "summary_index", "text"),
    "response.function_call_arguments.done": ("arguments", None, "arguments"),
    "response.custom_tool_call_input.done": ("custom_input", None, "input"),
    "response.mcp_call_arguments.done": ("mcp_arguments", None, "arguments"),
}
JSON_FAMILIES = frozenset(family for family, _, is_json in DELTAS.values() if is_json)
WITH_RESPONSE = frozenset({
    "response.created", "response.queued", "response.in_progress",
    "response.completed", "response.incomplete", "response.failed",
})
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})

StreamKey = tuple[str, Any, Any]  # (family, output_index, content/summary index)
Emitted = tuple[dict[str, Any], bool]  # an event to send, and whether it differs from the upstream's


class ResponsesStreamRestorer:
    """Sans-IO: feed each parsed Responses stream event, get back the events to send.

    Each text stream (a message part, a reasoning summary, a call's arguments) has its own streaming
    restorer, so a token split across deltas is held until it is complete. A delta that is held
    entirely is dropped; what is still held when the stream's `.done` (or its part's or item's done, or
    the response's end) arrives is sent as one more delta just before it. So the deltas sent add up
    to the restored `.done` text, which equals what `response.completed` says. Events are renumbered
    so `sequence_number` stays consecutive whatever was dropped or added.
    """

    def __init__(self, answers: ResponsesAnswers) -> None:
        self.answers = answers
        self._streams: dict[StreamKey, StreamRestorer] = {}
        self._templates: dict[StreamKey, dict[str, Any]] = {}  # each stream's last delta event
        self._next_sequence: int | None = None
        self.finished = False
        self.fault: str | None = None

    def feed(self, event: dict[str, Any]) -> list[Emitted]:
        kind = event.get("type") if isinstance(event.get("type"), str) else ""
        answers = self.answers
        answers.changed = False
        emitted: list[Emitted] = []
        if kind in DELTAS:
            if not self._delta(event, *DELTAS[kind]):
                return []
        else:
            emitted += self._release(self._closed_by(kind, event))
            if kind in DONES and answers:
                family, _, field = DONES[kind]
                answers.restore_field(event, field, json_text=family in JSON_FAMILIES)
            if kind in WITH_RESPONSE:
                if answers:
                    answers.response(event.get("response"))
                if isinstance(event.get("response"), dict):
                    answers.remember(event["response"].get("id"))
            elif answers:
                answers.item(event.get("item"))
                answers.part(event.get("part"))
                if kind == "error":
                    answers.restore_field(event, "message")
                    if isinstance(event.get("error"), dict):
                        answers.restore_field(event["error"], "message")
            if kind in TERMINAL:
                self.finished = True
                if kind in ("error", "response.failed"):
                    self.fault = "upstream_stream_error"
        emitted.append((event, answers.changed))
        return [self._number(payload, changed) for payload, changed in emitted]

    def finish(self) -> list[Emitted]:
        """The upstream ended without a terminal event: release every held tail."""
        return [self._number(payload, changed) for payload, changed in self._release(lambda key: True)]

    def error_payload(self, exc: ProxyError) -> dict[str, Any]:
        """The proxy's own error as a stream event. Both readers understand it: the openai SDK raises
        on a payload with `error`; a typed reader sees an `error` event with `code` and `message`."""
        number = self._next_sequence or 0
        self._next_sequence = number + 1
        body = exc.body()
        return {**body["error"], **body, "type": "error", "sequence_number": number}

    def _delta(self, event: dict[str, Any], family: str, sub_index: str | None, is_json: bool) -> bool:
        """Restore a delta event in place; False when all of it is held back (the event is dropped)."""
        delta = event.get("delta")
        if not self.answers or not isinstance(delta, str):
            return True
        key = (family, event.get("output_index"), event.get(sub_index) if sub_index else None)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = (self.answers.json if is_json else self.answers.text).stream()
        self._templates[key] = event
        restored = stream.feed(delta)
        if restored != delta:
            event["delta"] = restored
            self.answers.changed = True
        return bool(restored) or not delta

    def _closed_by(self, kind: str, event: dict[str, Any]) -> Callable[[StreamKey], bool]:
        """Which text streams this event ends (their held tails must go out before it)."""
        output_index = event.get("output_index")
        if kind in DONES:
            family, sub_index, _ = DONES[kind]
            done_key = (family, output_index, event.get(sub_index) if sub_index else None)
            return lambda key: key == done_key
        if kind == "response.content_part.done":
            content_index = event.get("content_index")
            return lambda key: key[1] == output_index and key[0] != "summary" and key[2] == content_index
        if kind == "response.reasoning_summary_part.done":
            summary_index = event.get("summary_index")
            return lambda key: key == ("summary", output_index, summary_index)
        if kind == "response.output_item.done":
            return lambda key: key[1] == output_index
        if kind in TERMINAL:
            return lambda key: True
        return lambda key: False

    def _release(self, closes: Callable[[StreamKey], bool]) -> list[Emitted]:
        released: list[Emitted] = []
        for key in [key for key in self._streams if closes(key)]:
            tail = self._streams.pop(key).flush()
            template = self._templates.pop(key, None)
            if tail and template is not None:
                # A delta of its own, shaped like the stream's last one (logprobs belong to earlier ones).
                extra = {k: v for k, v in template.items() if k != "obfuscation"}
                extra["delta"] = tail
                if "logprobs" in extra:
                    extra["logprobs"] = []
                released.append((extra, True))
        return released

    def _number(self, event: dict[str, Any], changed: bool) -> Emitted:
        number = event.get("sequence_number")
        if not isinstance(number, int) or isinstance(number, bool):
            return event, changed
        if self._next_sequence is None:
            self._next_sequence = number
        if number != self._next_sequence:
            event["sequence_number"] = self._next_sequence
            changed = True
        self._next_sequence += 1
        return event, changed
