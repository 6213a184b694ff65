"""`/v1/responses`: which fields carry text, how answers are restored (streams: responses_stream.py),
and the per-conversation mapping kept in the vault.

Scanned: `input` (a string, or items: messages with text parts, `function_call` arguments (JSON-aware),
`function_call_output`, custom tool calls and their outputs, reasoning summaries), `instructions`,
the descriptions of function and custom tools (and of their parameters: developer-written text that
often names people), `prompt.variables`, `user`, `metadata`. Other item and part types are refused
with a 400: their fields are not known, so they could not be sent scanned.

Stateful turns: the upstream keeps earlier turns (`store`, `previous_response_id`, `conversation`),
so a later request carries only the new input. Each turn's mapping (merged with the turns before it)
is saved in the vault under the response id, and under the conversation id when there is one. A turn
that continues a stored response loads that mapping: values it repeats keep their tokens, new values
get unused ones (invariant 3), and tokens of earlier turns that the model quotes are restored.
"""

from __future__ import annotations

from typing import Any

from privacy_proxy.access import CURRENT_CLIENT
from privacy_proxy.errors import BadRequest, VaultFailure
from privacy_proxy.openai.answers import Answers
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.vault import Vault, VaultError

RESPONSES_SCOPE = "responses"
CONVERSATIONS_SCOPE = "conversations"

# Part type → the key holding its text (input and output messages, tool outputs, reasoning).
TEXT_PARTS = {
    "input_text": "text", "output_text": "text", "text": "text", "refusal": "refusal",
    "summary_text": "text", "reasoning_text": "text",
}
NON_TEXT_PARTS = frozenset({"input_image", "input_file", "input_audio"})
SUPPORTED_ITEMS = (
    "message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output",
    "reasoning", "item_reference",
)


class ResponsesRequest(TextRequest):
    def __init__(self, body: Any, non_text_parts: str = "block") -> None:
        super().__init__(body, non_text_parts=non_text_parts)
        body = self.body
        if "prompt" not in body:  # a stored prompt template may name the model itself
            self.require_model()
        for flag in ("stream", "store", "background"):
            self.check_flag(flag)
        if body.get("previous_response_id") is not None and not isinstance(body["previous_response_id"], str):
            raise BadRequest("'previous_response_id' must be a string", param="previous_response_id")
        conversation = body.get("conversation")
        if conversation is not None and not isinstance(conversation, str) and not (
            isinstance(conversation, dict) and isinstance(conversation.get("id"), str)
        ):
            raise BadRequest("'conversation' must be an id or an object with an 'id'", param="conversation")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise BadRequest("'tools' must be an array", param="tools")
            for index, tool in enumerate(tools):
                self._tool(tool, f"tools[{index}]")
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            self.add(body, "instructions", "instructions")
        elif instructions is not None:
            raise BadRequest("'instructions' must be a string", param="instructions")
        self._input(body)
        if body.get("prompt") is not None:
            self._prompt(body["prompt"])
        for key in ("user", "metadata"):
            if key in body:
                self.add_free_text(body, key, key)
        self.check_non_text()

    # -- extraction ---------------------------------------------------------------------------
    def _input(self, body: dict[str, Any]) -> None:
        value = body.get("input")
        if isinstance(value, str):
            self.add(body, "input", "input")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._item(item, f"input[{index}]")
        elif value is not None or "prompt" not in body:
            raise BadRequest("'input' is required: a string or an array of input items", param="input")

    def _tool(self, tool: Any, path: str) -> None:
        if not isinstance(tool, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        # Built-in tools (web_search, file_search, mcp, …) are configuration, relayed under the leak guard.
        if tool.get("type") in ("function", "custom"):
            if isinstance(tool.get("description"), str):
                self.add(tool, "description", f"{path}.description")
            self.add_schema_descriptions(tool.get("parameters"), f"{path}.parameters")

    def _item(self, item: Any, path: str) -> None:
        if not isinstance(item, dict):
            raise BadRequest(f"'{path}' must be an object", param=path)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            if not isinstance(item.get("role"), str):
                raise BadRequest(f"'{path}.role' is required and must be a string", param=f"{path}.role")
            self._text_or_parts(item, "content", f"{path}.content")
        elif kind == "function_call":
            if not isinstance(item.get("arguments"), str):
                raise BadRequest(f"'{path}.arguments' must be a string", param=f"{path}.arguments")
            self.add_json_text(item, "arguments", f"{path}.arguments")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._text_or_parts(item, "output", f"{path}.output")
        elif kind == "custom_tool_call":
            if not isinstance(item.get("input"), str):
                raise BadRequest(f"'{path}.input' must be a string", param=f"{path}.input")
            self.add(item, "input", f"{path}.input")
        elif kind == "reasoning":
            # encrypted_content is the upstream's own opaque state of earlier (already scanned) turns.
            for key in ("summary", "content"):
                if isinstance(item.get(key), list):
                    self._parts(item, key, f"{path}.{key}")
        elif kind != "item_reference":
            # The client's type string is not quoted back: errors never echo request content.
            raise BadRequest(
                f"'{path}' is an input item of a type privacy-proxy does not scan, so it is refused rather "
                f"than sent unscanned; supported types: {', '.join(SUPPORTED_ITEMS)}",
                param=f"{path}.type",
                code="unsupported_content",
            )

    def _text_or_parts(self, container: dict[str, Any], key: str, path: str) -> None:
        value = container.get(key)
        if isinstance(value, str):
            self.add(container, key, path)
        elif isinstance(value, list):
            self._parts(container, key, path)
        else:
            raise BadRequest(f"'{path}' must be a string or an array of parts", param=path)

    def _parts(self, container: dict[str, Any], key: str, path: str) -> None:
        parts = container[key]
        kept = [part for index, part in enumerate(parts) if self._part(part, f"{path}[{index}]")]
        if len(kept) != len(parts):
            container[key] = kept

    def _part(self, part: Any, path: str) -> bool:
        """Register one content part; False when the policy drops it."""
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"'{path}' must be an object with a 'type'", param=path)
        kind = part["type"]
        if kind in TEXT_PARTS:
            field = TEXT_PARTS[kind]
            if not isinstance(part.get(field), str):
                raise BadRequest(f"'{path}.{field}' must be a string", param=f"{path}.{field}")
            self.add(part, field, f"{path}.{field}")
            return True
        if kind in NON_TEXT_PARTS:
            self.non_text_paths.append(path)
            return self.non_text_parts != "drop"
        raise BadRequest(
            f"'{path}' is a content part of a type privacy-proxy does not scan, so it is refused rather than "
            f"sent unscanned; text types: {', '.join(TEXT_PARTS)}; non-text ({', '.join(sorted(NON_TEXT_PARTS))}) "
            "follow content.non_text_parts",
            param=f"{path}.type",
            code="unsupported_content",
        )

    def _prompt(self, prompt: Any) -> None:
        if not isinstance(prompt, dict):
            raise BadRequest("'prompt' must be an object", param="prompt")
        variables = prompt.get("variables")
        if variables is None:
            return
        if not isinstance(variables, dict):
            raise BadRequest("'prompt.variables' must be an object", param="prompt.variables")
        for name in list(variables):
            path = f"prompt.variables.{name}"
            if isinstance(variables[name], str):
                self.add(variables, name, path)
            elif not self._part(variables[name], path):
                del variables[name]

    # -- conversation state -----------------------------------------------------------------------
    @property
    def previous_response_id(self) -> str | None:
        return self.body.get("previous_response_id") or None

    @property
    def conversation_id(self) -> str | None:
        conversation = self.body.get("conversation")
        return (conversation.get("id") if isinstance(conversation, dict) else conversation) or None

    @property
    def stored(self) -> bool:
        return self.body.get("store") is not False  # the API stores responses unless told not to

    def load_prior(self, vault: Vault | None) -> None:
        """The tokens of the turns this request continues. A previous response the proxy has no
        mapping for is refused: the upstream holds its tokens, and new tokens could collide with them."""
        prior: dict[str, str] = {}
        if self.conversation_id:
            prior.update(_read(vault, CONVERSATIONS_SCOPE, self.conversation_id) or {})
        if self.previous_response_id:
            earlier = _read(vault, RESPONSES_SCOPE, self.previous_response_id)
            if earlier is None:
                raise BadRequest(
                    "previous_response_id names a response whose token mapping privacy-proxy does not hold "
                    "(not created through this proxy, stored with store: false, expired, or lost in a restart "
                    "of a proxy with an in-memory vault); start a new conversation or send the history in 'input'",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            prior.update(earlier)
        self.prior = prior


def stored_mapping(vault: Vault | None, response_id: str) -> dict[str, str] | None:
    """The mapping saved for a stored response (to restore it when it is fetched again), or None."""
    return _read(vault, RESPONSES_SCOPE, response_id)


def forget(vault: Vault | None, response_id: str) -> None:
    """Drop a deleted response's mapping: the vault keeps originals no longer than needed."""
    if vault is None:
        raise VaultFailure("the vault is not open")
    try:
        vault.delete(RESPONSES_SCOPE, _owned(response_id))
    except VaultError as exc:
        raise VaultFailure("the response's token mapping could not be deleted") from exc


def _owned(key: str) -> str:
    """The vault key of a response or conversation id: per client key when access control is on, so
    one client cannot continue another's conversation and get its values restored."""
    client = CURRENT_CLIENT.get()
    return key if client is None else f"{client.name}/{key}"


def _read(vault: Vault | None, scope: str, key: str) -> dict[str, str] | None:
    if vault is None:
        raise VaultFailure("the vault is not open; the request was not forwarded")
    try:
        record = vault.get(scope, _owned(key))
    except VaultError as exc:
        raise VaultFailure("a conversation's token mapping could not be read; the request was not forwarded") from exc
    if record is None:
        return None
    restorable = record.get("restorable") if isinstance(record, dict) else None
    if not isinstance(restorable, dict) or not all(isinstance(v, str) for v in restorable.values()):
        raise VaultFailure("a conversation's token mapping is unreadable; the request was not forwarded")
    return restorable


# -- answers ----------------------------------------------------------------------------------
class ResponsesAnswers(Answers):
    """Restores `response` objects and their items; saves the mapping under the response id."""

    def __init__(
        self, mapping: dict[str, str], *, vault: Vault | None = None, store: bool = False, conversation: str | None = None
    ) -> None:
        super().__init__(mapping)
        self._vault = vault
        self._store = store  # save under the response id (the request said store: true, the default)
        self._conversation = conversation  # and under the conversation id
        self._remembered: set[str] = set()

    @classmethod
    def for_request(cls, request: ResponsesRequest, mapping: dict[str, str], vault: Vault | None) -> ResponsesAnswers:
        return cls(mapping, vault=vault, store=request.stored, conversation=request.conversation_id)

    def completion(self, payload: Any) -> Any:
        if isinstance(payload, dict):
            if self:
                self.response(payload)
            self.remember(payload.get("id"))
        return payload

    def remember(self, response_id: Any) -> None:
        """Keep this turn's mapping (earlier turns included) for the turns that continue it."""
        if not isinstance(response_id, str) or not response_id or response_id in self._remembered:
            return
        self._remembered.add(response_id)
        if not self._store and not self._conversation:
            return
        if self._vault is None:
            raise VaultFailure("the vault is not open; the answer was withheld")
        record = {"restorable": dict(self.mapping)}
        # How long a record lives is the vault's setting (`vault.ttl`): the operator's call.
        try:
            if self._store:
                self._vault.put(RESPONSES_SCOPE, _owned(response_id), record)
            if self._conversation:
                self._vault.put(CONVERSATIONS_SCOPE, _owned(self._conversation), record)
        except VaultError as exc:
            raise VaultFailure("the conversation's token mapping could not be saved; the answer was withheld") from exc

    def response(self, response: Any) -> None:
        if not isinstance(response, dict):
            return
        instructions = response.get("instructions")
        if isinstance(instructions, list):  # a prompt template's instructions come back as items
            for item in instructions:
                self.item(item)
        else:
            self.restore_field(response, "instructions")
        self.restore_field(response, "output_text")
        for item in response.get("output") or []:
            self.item(item)
        for tool in response.get("tools") or []:
            if isinstance(tool, dict):
                self.restore_field(tool, "description")
                self._schema(tool.get("parameters"))
        if isinstance(response.get("error"), dict):
            self.restore_field(response["error"], "message")
        for key in ("metadata", "user"):
            self.restore_strings(response, key)
        prompt = response.get("prompt")
        if isinstance(prompt, dict) and isinstance(prompt.get("variables"), dict):
            variables = prompt["variables"]
            for name in variables:
                if isinstance(variables[name], str):
                    self.restore_field(variables, name)
                else:
                    self.part(variables[name])

    def item(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message" or kind in ("function_call_output", "custom_tool_call_output"):
            key = "content" if kind == "message" else "output"
            value = item.get(key)
            if isinstance(value, list):
                for part in value:
                    self.part(part)
            else:
                self.restore_field(item, key)
        elif kind in ("function_call", "mcp_call"):
            self.restore_field(item, "arguments", json_text=True)
            self.restore_field(item, "output")
        elif kind == "custom_tool_call":
            self.restore_field(item, "input")
        elif kind == "reasoning":
            for key in ("summary", "content"):
                for part in item.get(key) or []:
                    self.part(part)

    def part(self, part: Any) -> None:
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(kind, str) and kind in TEXT_PARTS:
            self.restore_field(part, TEXT_PARTS[kind])

    def _schema(self, schema: Any) -> None:
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "description":
                    self.restore_field(schema, key)
                else:
                    self._schema(value)
        elif isinstance(schema, list):
            for value in schema:
                self._schema(value)
