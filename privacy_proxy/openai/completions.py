"""`/v1/completions` (the legacy text-completion API): prompt and suffix scanned, `choices[].text`
restored, whole or streamed per choice. With `echo: true` the answer repeats the prompt as sent
(tokens), so restoring the text gives the client its own prompt back.
"""

from __future__ import annotations

from typing import Any

from privacy_proxy.errors import BadRequest
from privacy_proxy.openai.answers import Answers
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.openai.tokens import take_token_arrays, token_arrays
from sanitizers.restore import StreamRestorer

TOKEN_HINT = "Clients that tokenize themselves can usually be told to send the prompt as a string."


class CompletionsRequest(TextRequest):
    def __init__(self, body: Any, *, token_arrays_mode: str = "detokenize") -> None:
        super().__init__(body)
        body = self.body
        self.require_model()
        for flag in ("stream", "echo"):
            self.check_flag(flag)
        self.check_positive_int("n")
        self.check_positive_int("best_of")
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            self.add(body, "prompt", "prompt")
        elif isinstance(prompt, list) and prompt and all(isinstance(item, str) for item in prompt):
            for index in range(len(prompt)):
                self.add(prompt, index, f"prompt[{index}]")
        elif token_arrays(prompt) is not None:
            take_token_arrays(self, "prompt", token_arrays_mode, TOKEN_HINT)
        else:
            raise BadRequest("'prompt' is required: a string, an array of strings, or token ids", param="prompt")
        suffix = body.get("suffix")
        if isinstance(suffix, str):
            self.add(body, "suffix", "suffix")
        elif suffix is not None:
            raise BadRequest("'suffix' must be a string", param="suffix")
        if "user" in body:
            self.add_free_text(body, "user", "user")


class CompletionAnswers(Answers):
    """Restores `text_completion` answers: each choice's `text`."""

    def completion(self, payload: Any) -> Any:
        if self and isinstance(payload, dict):
            for choice in payload.get("choices") or []:
                if isinstance(choice, dict):
                    self.restore_field(choice, "text")
        return payload


class CompletionStreamRestorer:
    """Sans-IO: feed each parsed `text_completion` chunk, get it back restored (in place).

    One streaming restorer per choice index; a choice's held-back tail is released in the chunk that
    carries its finish_reason, or by `finish()` as a last chunk when the upstream ended without one.
    """

    def __init__(self, answers: CompletionAnswers) -> None:
        self.answers = answers
        self._streams: dict[int, StreamRestorer] = {}
        self._last: dict[str, Any] = {}
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
            text = choice.get("text")
            if isinstance(text, str):
                stream = self._streams.get(index)
                if stream is None:
                    stream = self._streams[index] = self.answers.text.stream()
                restored = stream.feed(text)
                if restored != text:
                    choice["text"], self.changed = restored, True
            if choice.get("finish_reason") is not None and index in self._streams:
                tail = self._streams.pop(index).flush()
                if tail:
                    choice["text"], self.changed = (choice.get("text") or "") + tail, True
        return chunk

    def finish(self) -> dict[str, Any] | None:
        """A final chunk with every tail still held (the upstream ended without finish_reason)."""
        choices = []
        for index in sorted(self._streams):
            tail = self._streams.pop(index).flush()
            if tail:
                choices.append({"index": index, "text": tail, "logprobs": None, "finish_reason": None})
        if not choices:
            return None
        template = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return {**template, "choices": choices}
