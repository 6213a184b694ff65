"""The scanned routes: for each, how its body is parsed, how its answers are restored and streamed,
and which headers it needs upstream.

`app.py` serves every route here with one handler (read → parse → load conversation state → scan
→ forward → restore → audit); a route differs only in the parts named in its `Route`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from privacy_proxy.openai.answers import Answers
from privacy_proxy.openai.anthropic_messages import (
    MessagesAnswers,
    MessagesRequest,
    MessagesStreamRestorer,
)
from privacy_proxy.openai.chat import AnswerRestorer, ChatRequest, ChatStreamRestorer
from privacy_proxy.openai.completions import (
    CompletionAnswers,
    CompletionsRequest,
    CompletionStreamRestorer,
)
from privacy_proxy.openai.embeddings import EmbeddingsRequest
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.openai.responses import ResponsesAnswers, ResponsesRequest
from privacy_proxy.openai.responses_stream import ResponsesStreamRestorer
from privacy_proxy.policy.model import Policy
from privacy_proxy.streaming import ChoicesDialect, StreamDialect, TypedEventsDialect
from privacy_proxy.upstream import Upstream
from privacy_proxy.vault import Vault


@dataclass(frozen=True)
class Route:
    path: str  # what the client calls, e.g. /v1/responses
    upstream_path: str  # appended to the upstream base URL (which ends in /v1)
    parse: Callable[[Any, Policy], TextRequest]  # validate and list segments; BadRequest / PolicyViolation
    # The answer's restorers (given the request, its mapping and the vault); None: the answer holds
    # no text and is relayed byte for byte (embeddings).
    answers: Callable[[TextRequest, dict[str, str], Vault | None], Answers] | None = None
    stream: Callable[[Answers], StreamDialect] | None = None
    # Client headers this protocol needs upstream, beyond upstream.py's common ones (the key always
    # goes as `Authorization: Bearer`, which the anthropic SDK itself sends too).
    client_headers: tuple[str, ...] = ()

    def upstream_headers(self, client_headers: Mapping[str, str], upstream: Upstream) -> dict[str, str]:
        headers = upstream.request_headers(client_headers)
        headers.update({name: client_headers[name] for name in self.client_headers if name in client_headers})
        return headers


def _chat_stream(answers: Answers) -> StreamDialect:
    assert isinstance(answers, AnswerRestorer)
    return ChoicesDialect(ChatStreamRestorer(answers))


def _completion_stream(answers: Answers) -> StreamDialect:
    assert isinstance(answers, CompletionAnswers)
    return ChoicesDialect(CompletionStreamRestorer(answers))


def _responses_answers(request: TextRequest, mapping: dict[str, str], vault: Vault | None) -> Answers:
    assert isinstance(request, ResponsesRequest)
    return ResponsesAnswers.for_request(request, mapping, vault)


def _responses_stream(answers: Answers) -> StreamDialect:
    assert isinstance(answers, ResponsesAnswers)
    return TypedEventsDialect(ResponsesStreamRestorer(answers))


def _messages_stream(answers: Answers) -> StreamDialect:
    assert isinstance(answers, MessagesAnswers)
    return TypedEventsDialect(MessagesStreamRestorer(answers))


ROUTES: tuple[Route, ...] = (
    Route(
        "/v1/chat/completions",
        "/chat/completions",
        parse=lambda body, policy: ChatRequest(body, non_text_parts=policy.content.non_text_parts),
        answers=lambda request, mapping, vault: AnswerRestorer(mapping),
        stream=_chat_stream,
    ),
    Route(
        "/v1/responses",
        "/responses",
        parse=lambda body, policy: ResponsesRequest(body, non_text_parts=policy.content.non_text_parts),
        answers=_responses_answers,
        stream=_responses_stream,
    ),
    Route(
        "/v1/completions",
        "/completions",
        parse=lambda body, policy: CompletionsRequest(body, token_arrays_mode=policy.content.token_arrays),
        answers=lambda request, mapping, vault: CompletionAnswers(mapping),
        stream=_completion_stream,
    ),
    Route(
        "/v1/embeddings",
        "/embeddings",
        parse=lambda body, policy: EmbeddingsRequest(body, token_arrays_mode=policy.content.token_arrays),
    ),
    Route(
        "/v1/messages",
        "/messages",
        parse=lambda body, policy: MessagesRequest(body, non_text_parts=policy.content.non_text_parts),
        answers=lambda request, mapping, vault: MessagesAnswers(mapping),
        stream=_messages_stream,
        client_headers=("anthropic-version", "anthropic-beta"),
    ),
)
