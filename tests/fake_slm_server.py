"""A fake local OpenAI-compatible SLM server (Ollama/llama.cpp stand-in): a real HTTP server on 127.0.0.1.

`/v1/chat/completions` answers the next of `queue` (FIFO), else `answer` (default: "local: " + the last user
message), whole or as SSE
chunks of `piece_chars` characters, after `delay` seconds, with `piece_delay` seconds between chunks,
or with HTTP `status`. Every request body is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from loopback_server import LoopbackServer


class FakeSLMServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reset()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = LoopbackServer(self.app, name="fake SLM server", graceful=1)
        self.port = 0

    def reset(self) -> None:
        self.requests.clear()
        self.headers.clear()
        self.answer: str | None = None
        self.queue: list[str] = []
        self.status = 200
        self.delay = 0.0
        self.piece_delay = 0.0
        self.piece_chars = 4

    def start(self) -> FakeSLMServer:
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status >= 400:
            return JSONResponse({"error": {"message": "fake failure", "type": "server_error"}}, status_code=self.status)
        last_user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        answer = self.queue.pop(0) if self.queue else (self.answer if self.answer is not None else f"local: {last_user}")
        base = {"id": "chatcmpl-slm", "created": 0, "model": body.get("model")}
        if not body.get("stream"):
            return JSONResponse({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]})

        async def events() -> AsyncIterator[bytes]:
            first = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            yield f"data: {json.dumps(first)}\n\n".encode()
            for i in range(0, len(answer), self.piece_chars):
                if self.piece_delay:
                    await asyncio.sleep(self.piece_delay)
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": {"content": answer[i:i + self.piece_chars]}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            last = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")
