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

    def completion(self, payload: Any) -> Any:  # pragma: no cover - every route overrides it
        raise NotImplementedError


def _has(container: dict[str, Any] | list[Any], key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and -len(container) <= key < len(container)
