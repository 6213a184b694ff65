"""`/v1/completions` (the legacy text-completion API): prompt and suffix scanned, `choices[].text`
restored, whole or streamed per choice. With `echo: true` the answer repeats the prompt as sent
(tokens), so restoring the text gives the client its own prompt back.
"""

from __future__ import annotations

from typing import Any

from privacy_proxy.errors import BadRequest
from privacy_proxy.openai.answers import Answers, ChoiceStreamRestorer
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.openai.tokens import take_text_input
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
        take_text_input(self, "prompt", token_arrays_mode, TOKEN_HINT)
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


class CompletionStreamRestorer(ChoiceStreamRestorer):
    """Sans-IO: feed each parsed `text_completion` chunk, get it back restored (in place); one streaming
    restorer per choice index."""

    def __init__(self, answers: CompletionAnswers) -> None:
        super().__init__()
        self.answers = answers
        self._streams: dict[int, StreamRestorer] = {}

    def _feed_choice(self, index: int, choice: dict[str, Any]) -> None:
        text = choice.get("text")
        if isinstance(text, str):
            stream = self._streams.get(index)
            if stream is None:
                stream = self._streams[index] = self.answers.text.stream()
            restored = stream.feed(text)
            if restored != text:
                choice["text"], self.changed = restored, True

    def _release(self, index: int, choice: dict[str, Any]) -> bool:
        tail = self._streams.pop(index).flush() if index in self._streams else ""
        if tail:
            choice["text"] = (choice.get("text") or "") + tail
        return bool(tail)

    def _held_indexes(self) -> list[int]:
        return sorted(self._streams)

    def _empty_choice(self, index: int) -> dict[str, Any]:
        return {"index": index, "text": "", "logprobs": None, "finish_reason": None}
