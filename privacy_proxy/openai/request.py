"""What every scanned route shares on the request side: a validated body, its text `Segment`s in
conversation order, and the write-back of rewritten texts.

A route's request class (chat, responses, completions, embeddings) walks its own fields and calls
`add` for each string that carries text; this base keeps the bookkeeping, the JSON-aware handling of
tool arguments, and the checks every OpenAI body needs (model, stream, n).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from privacy_proxy.errors import BadRequest, PolicyViolation


@dataclass(frozen=True, slots=True)
class Segment:
    path: str  # where the text lives, e.g. messages[2].content[0].text — never the text itself
    text: str


def json_document(value: str) -> Any | None:
    """The parsed object or array when `value` is JSON text of one (tool arguments), else None."""
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


class TextRequest:
    """A request body (ours alone: rewritten in place) and the text segments found in it.

    Subclasses validate their shape and call `add` / `add_json_text` / `add_free_text` while walking
    it; `outbound(texts)` then writes the rewritten texts back, in the same order.
    """

    # Whether `strategy: split` and `strategy: local` can serve this route (chat completions only).
    supports_collaboration = False

    def __init__(self, body: Any, *, non_text_parts: str = "block") -> None:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        self.body: dict[str, Any] = body
        self.non_text_parts = non_text_parts
        self.segments: list[Segment] = []
        self.non_text_paths: list[str] = []
        # Tokens handed out by earlier turns of a server-side conversation (token → original); the
        # transform reuses them so a value keeps its token across turns.
        self.prior: dict[str, str] = {}
        # Set when the policy let part of the body through unscanned (audited as the reason).
        self.unscanned: str | None = None
        self._slots: list[tuple[Any, Any]] = []
        self._json_docs: list[tuple[Any, Any, Any]] = []
        # Per segment, the role of the message it belongs to (chat), else None; and the message's index.
        self.roles: list[str | None] = []
        self.message_index: list[int | None] = []
        self._role: tuple[str | None, int | None] = (None, None)

    # -- common fields --------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def text_chars(self) -> int:
        return sum(len(segment.text) for segment in self.segments)

    def require_model(self) -> None:
        if not isinstance(self.body.get("model"), str) or not self.body["model"]:
            raise BadRequest("'model' is required and must be a string", param="model")

    def check_flag(self, key: str) -> None:
        if key in self.body and self.body[key] is not None and not isinstance(self.body[key], bool):
            raise BadRequest(f"'{key}' must be a boolean", param=key)

    def check_positive_int(self, key: str) -> None:
        value = self.body.get(key)
        if key in self.body and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadRequest(f"'{key}' must be a positive integer", param=key)

    def check_non_text(self) -> None:
        if self.non_text_paths and self.non_text_parts == "block":
            raise PolicyViolation(
                "this request has image, audio or file parts, which cannot be scanned for personal data; "
                "the policy blocks them (content.non_text_parts)",
                reason="non_text_content",
            )

    # -- extraction -----------------------------------------------------------------------------
    def add(self, container: Any, key: Any, path: str) -> None:
        """Register `container[key]` (a string) as a text segment."""
        text = container[key]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # "\ud800" is a legal JSON escape but no character: detectors and upstreams choke on it.
            raise BadRequest(f"'{path}' contains an unpaired UTF-16 surrogate", param=path) from None
        self._slots.append((container, key))
        self.segments.append(Segment(path, text))
        self.roles.append(self._role[0])
        self.message_index.append(self._role[1])

    def routing_texts(self) -> list[str]:
        """The texts the topic classifier judges for routing: the user's own messages where the route
        has roles (chat), else every segment."""
        users = [segment.text for segment, role in zip(self.segments, self.roles, strict=True) if role == "user"]
        return users or [segment.text for segment in self.segments]

    def add_json_text(self, container: Any, key: Any, path: str) -> None:
        """A string that is usually JSON (tool arguments): its string values become segments and the
        JSON is re-serialized on the way out, so it stays valid; other text is one segment."""
        parsed = json_document(container[key])
        if parsed is None:
            self.add(container, key, path)
            return
        self._json_docs.append((container, key, parsed))
        self._json_strings(parsed, path)

    def add_json_value(self, container: Any, key: Any, path: str) -> None:
        """A parsed JSON value (an Anthropic tool_use input): each string inside it is a segment."""
        if isinstance(container[key], str):
            self.add(container, key, path)
        else:
            self._json_strings(container[key], path)

    def _json_strings(self, node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            child = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
            if isinstance(value, str):
                self.add(node, key, child)
            else:
                self._json_strings(value, child)

    def add_free_text(self, container: Any, key: Any, path: str) -> None:
        """Every string under `container[key]` (user, metadata, prompt variables)."""
        value = container[key]
        if isinstance(value, str):
            self.add(container, key, path)
        elif isinstance(value, dict):
            for sub_key in list(value):
                self.add_free_text(value, sub_key, f"{path}.{sub_key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, (str, dict, list)):
                    self.add_free_text(value, index, f"{path}[{index}]")

    def add_schema_descriptions(self, schema: Any, path: str) -> None:
        """The `description` strings of a JSON schema (tool parameters), at any depth."""
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "description" and isinstance(value, str):
                    self.add(schema, key, f"{path}.description")
                else:
                    self.add_schema_descriptions(value, f"{path}.{key}")
        elif isinstance(schema, list):
            for index, value in enumerate(schema):
                self.add_schema_descriptions(value, f"{path}[{index}]")

    # -- write-back -----------------------------------------------------------------------------
    def outbound(self, texts: list[str]) -> Any:
        """The body to send upstream, with the rewritten texts in place."""
        for (container, key), text in zip(self._slots, texts, strict=True):
            container[key] = text
        for container, key, parsed in self._json_docs:
            container[key] = json.dumps(parsed, ensure_ascii=False)
        return self.body

    def load_prior(self, vault: Any) -> None:
        """Stateful routes fetch the tokens of earlier turns here (see responses.py). Default: none."""
