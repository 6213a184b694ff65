"""A fake local OpenAI-compatible SLM server (Ollama/llama.cpp stand-in): a real HTTP server on 127.0.0.1.

`/v1/chat/completions` answers the next of `queue` (FIFO), else `answer` (default: "local: " + the last user
message), whole or as SSE
chunks of `piece_chars` characters, after `delay` seconds, with `piece_delay` seconds between chunks,
or with HTTP `status`. Every request body is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class FakeSLMServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reset()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._thread: threading.Thread | None = None
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
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", loop="asyncio", log_config=None,
                                timeout_graceful_shutdown=1)
        self._server = _Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[sock])), daemon=True)
        self._thread.start()
        if not self._server.ready.wait(10):
            raise RuntimeError("fake SLM server did not start")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(5)
            self._thread = None

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
