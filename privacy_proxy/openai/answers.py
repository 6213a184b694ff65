"""What every route shares on the answer side: one request's restorers, plain text and JSON text.

A route's answer class (chat, responses, completions) says where its answers carry text and
implements `completion(payload)`, which restores a whole JSON answer in place.
"""

from __future__ import annotations

from typing import Any

from sanitizers.restore import Restorer, json_string_escape


class Answers:
    """Restores the answers of one request: plain text, and text inside JSON strings (tool arguments).

    `changed` turns True whenever `restore_field` rewrote something, so a stream relay can send the
    upstream's bytes unchanged when nothing was restored.
    """

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.text = Restorer(mapping)
        self._json: Restorer | None = None
        self.changed = False

    @property
    def json(self) -> Restorer:
        # Built on first use: most answers carry no tool calls, and each restorer compiles a pattern.
        if self._json is None:
            self._json = Restorer(self.mapping, escape=json_string_escape)
        return self._json

    def __bool__(self) -> bool:
        return bool(self.text)

    def restore_field(self, container: Any, key: Any, *, json_text: bool = False) -> None:
        """Restore `container[key]` in place when it is a string (JSON text with `json_text`)."""
        value = container[key] if isinstance(container, (dict, list)) and _has(container, key) else None
        if not isinstance(value, str):
            return
        restored = (self.json if json_text else self.text).restore(value)
        if restored != value:
            container[key] = restored
            self.changed = True

    def restore_strings(self, container: Any, key: Any) -> None:
        """Restore every string under `container[key]`, at any depth (metadata, tool inputs)."""
        value = container.get(key) if isinstance(container, dict) else container[key]
        if isinstance(value, str):
            self.restore_field(container, key)
        elif isinstance(value, dict):
            for sub_key in value:
                self.restore_strings(value, sub_key)
        elif isinstance(value, list):
            for index in range(len(value)):
                self.restore_strings(value, index)

    def completion(self, payload: Any) -> Any:  # pragma: no cover - every route overrides it
        raise NotImplementedError


def _has(container: dict[str, Any] | list[Any], key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and -len(container) <= key < len(container)


class ChoiceStreamRestorer:
    """Base of the sans-IO stream restorers of choice-shaped chunks (chat, completions): feed each parsed
    chunk, get it back restored in place. Subclasses restore one choice (`_feed_choice`) and move a
    choice's held-back tails into it (`_release`); the tails go out in the chunk carrying the choice's
    finish_reason, or from `finish()` as one last chunk when the upstream ended without one."""

    def __init__(self) -> None:
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
            self._feed_choice(index, choice)
            if choice.get("finish_reason") is not None and self._release(index, choice):
                self.changed = True
        return chunk

    def finish(self) -> dict[str, Any] | None:
        """A final chunk with every tail still held (the upstream ended without finish_reason)."""
        choices = []
        for index in self._held_indexes():
            choice = self._empty_choice(index)
            if self._release(index, choice):
                choices.append(choice)
        if not choices:
            return None
        template = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return {**template, "choices": choices}

    def _feed_choice(self, index: int, choice: dict[str, Any]) -> None:
        raise NotImplementedError

    def _release(self, index: int, choice: dict[str, Any]) -> bool:
        """Move the choice's held tails into it; True if anything was added."""
        raise NotImplementedError

    def _held_indexes(self) -> list[int]:
        raise NotImplementedError

    def _empty_choice(self, index: int) -> dict[str, Any]:
        raise NotImplementedError
