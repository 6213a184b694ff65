"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1.

It echoes the last user message back (or a scripted answer), streams it as
``chat.completion.chunk`` SSE events in small random pieces, and can inject
errors and broken streams. ``/v1/responses`` (typed events, function calls,
stored response ids), ``/v1/completions`` and ``/v1/embeddings`` (float and
base64) and Anthropic's ``/v1/messages`` answer the same way; their bodies
are built in ``fake_routes.py``.  It runs uvicorn in a background thread with its own
event loop, so both sync tests and async tests (on their own loop) can use it.

Wire it as a session-scoped server plus a per-test fixture that calls
``reset()`` (cheap); every test then sees an empty ``requests`` list.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import fake_routes
from fake_routes import dumps, pieces
from loopback_server import LoopbackServer

MODEL: dict[str, Any] = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
STREAM_FAULTS = frozenset({"garbage", "truncated", "error_event", "reset"})
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass
class RecordedRequest:
    """One request as the fake received it (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    """How to answer one chat completion request; the defaults give a plain echo.

    ``stream_fault``: ``"garbage"`` a non-JSON data line then the end (a chat
    answer that is not streamed: its JSON cut short); ``"truncated"`` half the chunks, then half of the next event's bytes
    (so a decoder is left with a pending event), then a clean end of body;
    ``"error_event"`` some chunks, then ``data: {"error": {...}}``, then the end;
    ``"reset"`` like truncated but the connection is dropped without finishing
    the chunked body.  ``fragment_bytes`` sends each SSE event in random 1-5
    byte writes (exercises splits inside UTF-8 characters and CRLF).
    """

    answer: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stream_fault: str | None = None
    finish_length_at: int | None = None
    chunk_delay: float = 0.0
    response_delay: float = 0.0  # seconds before any answer (status and headers included)
    tool_call: bool | None = None
    fragment_bytes: bool = False

    def __post_init__(self) -> None:
        if self.stream_fault is not None and self.stream_fault not in STREAM_FAULTS:
            raise ValueError(f"unknown stream_fault {self.stream_fault!r}; one of {sorted(STREAM_FAULTS)}")


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope for ``status``."""
    kind, code, default = _ERRORS.get(status, ("api_error", None, f"HTTP {status}"))
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


def _error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def _text_of(content: Any) -> str:
    """A message's text: the string, or its ``text`` parts concatenated."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _echo(messages: Any) -> str:
    """The last user message's text ("" if there is none)."""
    msgs = messages if isinstance(messages, list) else []
    users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def _tool_name(payload: dict[str, Any], forced: bool | None) -> str | None:
    tools = payload.get("tools") or []
    names = [t["function"].get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    choice = payload.get("tool_choice")
    if forced is False or (forced is None and (not names or choice == "none")):
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        return str(choice["function"]["name"])
    return names[0] if names else "fake_tool"


def _count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


class _EventStream(Response):
    """Sends pre-built SSE events, watching for the client going away meanwhile."""

    media_type = "text/event-stream"

    def __init__(self, owner: FakeUpstream, events: list[bytes], b: Behaviour, rng: random.Random) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **b.headers})
        self._owner, self._events, self._b, self._rng = owner, events, b, rng

    async def _body(self, send: Send) -> None:
        for n, event in enumerate(self._events):
            if n and self._b.chunk_delay:
                await asyncio.sleep(self._b.chunk_delay)
            for w in pieces(self._rng, event, 5) if self._b.fragment_bytes else [event]:
                await send({"type": "http.response.body", "body": w, "more_body": True})
                # Yield so a lost connection is noticed (uvicorn's send only awaits
                # when paused) instead of writing on into a dead socket.
                await asyncio.sleep(0)
        if self._b.stream_fault != "reset":  # "reset": return unfinished; uvicorn drops the connection
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        body = asyncio.ensure_future(self._body(send))
        watcher = asyncio.ensure_future(disconnected())
        finished = False
        try:
            await asyncio.wait({body, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finished = body.done() and not body.cancelled() and body.exception() is None
        finally:
            for task in (body, watcher):
                task.cancel()
            await asyncio.gather(body, watcher, return_exceptions=True)
            if not finished:
                self._owner._note_disconnect()


class FakeUpstream:
    """The fake server.  All public methods are thread-safe.

    Each chat request gets ``random.Random(f"{seed}:{k}")`` where ``k`` counts
    chat requests since start/``reset()`` (from 1), so piece sizes and the
    interleaving of choices are reproducible run to run.
    """

    def __init__(self, *, seed: int = 0, host: str = "127.0.0.1") -> None:
        self.seed = seed
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.default = Behaviour()
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Condition()
        self._chat_count = 0
        self._route_count = 0  # requests to the other generating routes (responses, completions)
        self._tool_count = 0
        # Stored responses by id (with their input items): previous_response_id, GET and DELETE use them.
        self.stored_responses: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        self._response_serial = 0  # never reset: a proxy's vault outlives a test's reset()
        self._disconnects = 0
        self._port: int | None = None
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        # One catch-all route: every request is recorded and unknown paths get an
        # OpenAI-shaped 404 rather than Starlette's plain-text one.
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])
        self._server = LoopbackServer(self.app, name="fake-upstream", host=host, graceful=2)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FakeUpstream:
        """Bind an ephemeral port and serve; returns once connections are accepted."""
        if self._port is None:
            self._port = self._server.start()
        return self

    def stop(self) -> None:
        """Shut down; in-flight streams get up to 2 s before being cancelled."""
        self._server.stop()
        self._port = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstream not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # -- scripting ---------------------------------------------------------
    def reset(self) -> None:
        """Forget requests, queued behaviours, counters; default back to echo."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.default = Behaviour()
            self._chat_count = self._route_count = self._tool_count = self._disconnects = 0
            self.stored_responses.clear()

    def push(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat, responses or completions requests (FIFO); then ``default``."""
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def disconnects(self) -> int:
        """Streams the client closed before the fake finished sending them."""
        with self._lock:
            return self._disconnects

    def wait_disconnects(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``disconnects >= count``; the fake notices asynchronously."""
        with self._lock:
            return self._lock.wait_for(lambda: self._disconnects >= count, timeout)

    def assert_nothing_leaked(self, protected: Iterable[str]) -> None:
        """Fail unless requests arrived and none held a ``protected`` value, raw or JSON-decoded, in any case."""
        assert self.requests, "the upstream received nothing"
        for recorded in self.requests:
            body = recorded.body.decode("utf-8").casefold()
            decoded = json.dumps(recorded.json, ensure_ascii=False).casefold() if recorded.body else ""
            for value in protected:
                assert value.casefold() not in body and value.casefold() not in decoded, "a protected value left"

    def _note_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1
            self._lock.notify_all()

    # -- HTTP --------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        path = request.url.path
        rec = RecordedRequest(request.method, path, headers, await request.body(), request.url.query)
        with self._lock:
            self.requests.append(rec)
        if path.rstrip("/") == "/v1/chat/completions":
            return await self._chat(rec) if rec.method == "POST" else _error(405, "Method not allowed.")
        if path.startswith("/v1/responses/"):
            return self._stored_response(rec)
        other = {"/v1/responses": self._responses, "/v1/completions": self._completions,
                 "/v1/embeddings": self._embeddings, "/v1/messages": self._messages}.get(path.rstrip("/"))
        if other is not None:
            return await other(rec) if rec.method == "POST" else _error(405, "Method not allowed.")
        if rec.method == "GET" and path.rstrip("/") == "/v1/models":
            return JSONResponse({"object": "list", "data": [MODEL]})
        if rec.method == "GET" and path.startswith("/v1/models/"):
            model_id = path[len("/v1/models/") :]
            if model_id == MODEL["id"]:
                return JSONResponse(MODEL)
            return _error(404, f"The model '{model_id}' does not exist")
        return _error(404, f"Invalid URL ({rec.method} {path})")

    async def _chat(self, rec: RecordedRequest) -> Response:
        with self._lock:
            b = self._queue.popleft() if self._queue else self.default
            self._chat_count += 1
            k = self._chat_count
        if b.response_delay:
            await asyncio.sleep(b.response_delay)
        if b.status >= 400:
            return _error(b.status, headers=b.headers)
        try:
            payload = json.loads(rec.body)
            n = int(payload.get("n") or 1)
            if not 1 <= n <= 128:
                raise ValueError(n)
        except (ValueError, TypeError, AttributeError):
            return _error(400, "We could not parse the JSON body of your request.", b.headers)
        answer = _echo(payload.get("messages")) if b.answer is None else b.answer
        tool = _tool_name(payload, b.tool_call)
        with self._lock:
            call_ids = [f"call_{self._tool_count + i + 1}" for i in range(n if tool else 0)]
            self._tool_count += len(call_ids)
        text = dumps({"text": answer}) if tool else answer
        finish = "tool_calls" if tool else "stop"
        if b.finish_length_at is not None and len(text) > b.finish_length_at:
            text, finish = text[: b.finish_length_at], "length"
        msgs = payload.get("messages") if isinstance(payload.get("messages"), list) else []
        prompt_tokens = sum(_count_tokens(_text_of(m.get("content"))) for m in msgs if isinstance(m, dict))
        completion_tokens = n * _count_tokens(text)
        plan = _Plan(
            base={"id": f"chatcmpl-fake{k}", "created": 1_700_000_000 + k, "model": payload.get("model") or "fake-model"},
            n=n, text=text, finish=finish, tool=tool, call_ids=call_ids,
            usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                   "total_tokens": prompt_tokens + completion_tokens},
        )  # fmt: skip
        if not payload.get("stream"):
            if b.stream_fault == "garbage":  # a non-streamed answer cut in the middle of its JSON
                return Response(dumps(_completion(plan))[:40], media_type="application/json", headers=b.headers)
            return JSONResponse(_completion(plan), headers=b.headers)
        rng = random.Random(f"{self.seed}:{k}")
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        return _EventStream(self, _stream_events(plan, rng, include_usage, b.stream_fault), b, rng)


    async def _next_behaviour(self) -> tuple[Behaviour, int]:
        with self._lock:
            b = self._queue.popleft() if self._queue else self.default
            self._route_count += 1
            k = self._route_count
        if b.response_delay:
            await asyncio.sleep(b.response_delay)
        return b, k

    async def _responses(self, rec: RecordedRequest) -> Response:
        b, k = await self._next_behaviour()
        if b.status >= 400:
            return _error(b.status, headers=b.headers)
        try:
            payload = json.loads(rec.body)
            answer = fake_routes.responses_echo(payload) if b.answer is None else b.answer
        except (ValueError, TypeError, AttributeError):
            return _error(400, "We could not parse the JSON body of your request.", b.headers)
        previous = payload.get("previous_response_id")
        if previous is not None and previous not in self.stored_responses:
            return _error(400, f"Previous response with id '{previous}' not found.", b.headers)
        tool = fake_routes.responses_tool(payload, b.tool_call)
        with self._lock:
            self._tool_count += 1 if tool else 0
            call_id = f"call_{self._tool_count}"
            self._response_serial += 1
            serial = self._response_serial
        cut = b.finish_length_at is not None and len(answer) > b.finish_length_at
        text = answer[: b.finish_length_at] if cut else answer
        response = fake_routes.response_object(payload, serial, text, tool, call_id, incomplete=cut)
        if payload.get("store", True) is not False:
            with self._lock:
                self.stored_responses[response["id"]] = (response, fake_routes.input_items(payload))
        if not payload.get("stream"):
            return JSONResponse(response, headers=b.headers)
        rng = random.Random(f"{self.seed}:responses:{k}")
        return _EventStream(self, fake_routes.response_events(response, rng, b.stream_fault), b, rng)

    def _stored_response(self, rec: RecordedRequest) -> Response:
        response_id, _, rest = rec.path.removeprefix("/v1/responses/").partition("/")
        with self._lock:
            stored = self.stored_responses.get(response_id)
            if stored is not None and rec.method == "DELETE" and not rest:
                del self.stored_responses[response_id]
        if stored is None:
            return _error(404, f"No response found with id '{response_id}'.")
        if rec.method == "DELETE" and not rest:
            return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})
        if rec.method == "GET" and not rest:
            return JSONResponse(stored[0])
        if rec.method == "GET" and rest == "input_items":
            items = stored[1]
            return JSONResponse({"object": "list", "data": items, "has_more": False,
                                 "first_id": items[0]["id"] if items else None,
                                 "last_id": items[-1]["id"] if items else None})
        return _error(404, f"Invalid URL ({rec.method} {rec.path})")

    async def _completions(self, rec: RecordedRequest) -> Response:
        b, k = await self._next_behaviour()
        if b.status >= 400:
            return _error(b.status, headers=b.headers)
        try:
            payload = json.loads(rec.body)
            prompts = fake_routes.completion_prompts(payload.get("prompt"))
            n = int(payload.get("n") or 1)
        except (ValueError, TypeError, AttributeError):
            return _error(400, "We could not parse the JSON body of your request.", b.headers)
        choices = fake_routes.completion_choices(prompts, n, b.answer, bool(payload.get("echo")), b.finish_length_at)
        base = {"id": f"cmpl-fake{k}", "object": "text_completion", "created": 1_700_000_000 + k,
                "model": payload.get("model") or "fake-model"}
        if not payload.get("stream"):
            usage = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
            return JSONResponse({**base, "choices": choices, "usage": usage}, headers=b.headers)
        rng = random.Random(f"{self.seed}:completions:{k}")
        return _EventStream(self, fake_routes.completion_events(base, choices, rng, b.stream_fault), b, rng)

    async def _messages(self, rec: RecordedRequest) -> Response:
        b, k = await self._next_behaviour()
        if b.status >= 400:
            return _error(b.status, headers=b.headers)
        try:
            payload = json.loads(rec.body)
            answer = fake_routes.messages_echo(payload) if b.answer is None else b.answer
        except (ValueError, TypeError, AttributeError):
            return _error(400, "We could not parse the JSON body of your request.", b.headers)
        cut = b.finish_length_at is not None and len(answer) > b.finish_length_at
        text = answer[: b.finish_length_at] if cut else answer
        message = fake_routes.message_object(payload, k, text, fake_routes.messages_tool(payload, b.tool_call), cut)
        if not payload.get("stream"):
            return JSONResponse(message, headers=b.headers)
        rng = random.Random(f"{self.seed}:messages:{k}")
        return _EventStream(self, fake_routes.message_events(message, rng, b.stream_fault), b, rng)

    async def _embeddings(self, rec: RecordedRequest) -> Response:
        try:
            return JSONResponse(fake_routes.embeddings_body(json.loads(rec.body)))
        except (ValueError, TypeError, AttributeError):
            return _error(400, "'input' must be a non-empty string or array.")


@dataclass
class _Plan:
    """What one chat request answers, shared by the JSON and the SSE forms."""

    base: dict[str, Any]  # id, created, model
    n: int
    text: str  # the content, or the tool call's arguments
    finish: str
    tool: str | None
    call_ids: list[str]
    usage: dict[str, int]


def _completion(p: _Plan) -> dict[str, Any]:
    choices = []
    for i in range(p.n):
        msg: dict[str, Any] = {"role": "assistant", "content": None if p.tool else p.text, "refusal": None}
        if p.tool:
            fn = {"name": p.tool, "arguments": p.text}
            msg["tool_calls"] = [{"id": p.call_ids[i], "type": "function", "function": fn}]
        choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": p.finish})
    return {**p.base, "object": "chat.completion", "choices": choices, "usage": p.usage}


def _stream_events(p: _Plan, rng: random.Random, include_usage: bool, fault: str | None) -> list[bytes]:
    per_choice: list[deque[tuple[dict[str, Any], str | None]]] = []
    for i in range(p.n):
        seq: deque[tuple[dict[str, Any], str | None]] = deque([({"role": "assistant", "content": ""}, None)])
        if p.tool:
            fn = {"name": p.tool, "arguments": ""}
            seq.append(({"tool_calls": [{"index": 0, "id": p.call_ids[i], "type": "function", "function": fn}]}, None))
            for s in pieces(rng, p.text):
                seq.append(({"tool_calls": [{"index": 0, "function": {"arguments": s}}]}, None))
        else:
            seq.extend(({"content": s}, None) for s in pieces(rng, p.text))
        seq.append(({}, p.finish))
        per_choice.append(seq)
    chunk_base = {**p.base, "object": "chat.completion.chunk", "system_fingerprint": None}
    if include_usage:
        chunk_base["usage"] = None  # as OpenAI does: null on every chunk but the last
    events: list[bytes] = []
    while any(per_choice):
        i = rng.choice([j for j, seq in enumerate(per_choice) if seq])  # interleave the choices
        delta, reason = per_choice[i].popleft()
        choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}
        events.append(f"data: {dumps({**chunk_base, 'choices': [choice]})}\n\n".encode())
    if include_usage:
        events.append(f"data: {dumps({**chunk_base, 'choices': [], 'usage': p.usage})}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    err = error_body(500, "The server had an error while processing your request.")
    return fake_routes.faulty(events, fault, f"data: {dumps(err)}\n\n".encode())
