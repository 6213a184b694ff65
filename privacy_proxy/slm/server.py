"""`slm.backend: openai` — an OpenAI-compatible server on this machine (Ollama, llama.cpp, vLLM)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.model import is_loopback_url
from privacy_proxy.slm.base import SLM, Message, SLMError, SLMTimeout, SLMUnavailable, _Deadline, _plain_messages
from privacy_proxy.sse import SSEDecoder


class OpenAISLM(SLM):
    """A local OpenAI-compatible server (`/chat/completions`)."""

    backend = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, allow_non_loopback: bool = False,
                 max_tokens: int = 512, temperature: float = 0.0, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(max_tokens=max_tokens, temperature=temperature, timeout=timeout)
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError("slm.base_url: an http(s) URL of the local server, e.g. http://127.0.0.1:11434/v1")
        if not allow_non_loopback and not is_loopback_url(base_url):
            raise ConfigError(
                "slm.base_url: the SLM sees the raw private prompt, so it must be on loopback "
                "(127.0.0.1, localhost, ::1); set slm.allow_non_loopback: true to override"
            )
        if not model:
            raise ConfigError("slm.model: the openai backend needs the server's model name")
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        # trust_env=False: no proxy variables may send private prompts elsewhere.
        self._client = httpx.Client(headers=headers, transport=transport, trust_env=False)

    def __repr__(self) -> str:
        return f"OpenAISLM(base_url={self.base_url!r}, model={self.model!r}, api_key=[secure])"

    def close(self) -> None:
        self._client.close()

    @contextlib.contextmanager
    def _post(self, body: dict[str, Any], deadline: _Deadline) -> Iterator[httpx.Response]:
        """The response to one POST, closed by a watchdog at the deadline (httpx timeouts are per read,
        so a server trickling bytes could otherwise run past it). Transport errors become SLM errors."""
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body,
                                     timeout=httpx.Timeout(max(deadline.left(), 0.001))) as response:
                fired = threading.Event()

                def expire() -> None:
                    fired.set()
                    response.close()

                watchdog = threading.Timer(max(deadline.left(), 0.0), expire)
                watchdog.daemon = True
                watchdog.start()
                try:
                    if response.status_code >= 400:
                        raise SLMError(f"the local SLM server answered HTTP {response.status_code}")
                    yield response
                finally:
                    watchdog.cancel()
                if fired.is_set():  # closed under the reader, which may have seen a clean end
                    raise SLMTimeout("the local SLM did not finish within the timeout")
        except SLMError:
            raise
        except Exception as exc:
            if deadline.passed() or isinstance(exc, httpx.TimeoutException):
                raise SLMTimeout("the local SLM did not answer within the timeout") from exc
            if isinstance(exc, httpx.TransportError):
                raise SLMUnavailable(f"the local SLM server is unreachable ({type(exc).__name__})") from exc
            raise SLMError(f"the local SLM call failed ({type(exc).__name__})") from exc

    def _body(self, messages: Sequence[Message], max_tokens: int, temperature: float, stream: bool) -> dict[str, Any]:
        return {"model": self.model, "messages": _plain_messages(messages), "max_tokens": max_tokens,
                "temperature": temperature, "stream": stream}

    def stream(self, messages: Sequence[Message], *, max_tokens: int | None = None,
               temperature: float | None = None, timeout: float | None = None) -> Iterator[str]:
        max_tokens, temperature, timeout = self._options(max_tokens, temperature, timeout)
        deadline = _Deadline(timeout)
        body = self._body(messages, max_tokens, temperature, True)
        decoder = SSEDecoder()
        with self._post(body, deadline) as response:
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    piece, done = self._piece(event.data)
                    if piece:
                        yield piece
                    if done:
                        return
            for event in decoder.close():
                piece, _ = self._piece(event.data)
                if piece:
                    yield piece

    def generate(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float | None = None, timeout: float | None = None) -> str:
        max_tokens, temperature, timeout = self._options(max_tokens, temperature, timeout)
        deadline = _Deadline(timeout)
        with self._post(self._body(messages, max_tokens, temperature, False), deadline) as response:
            raw = response.read()
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError) as exc:
            raise SLMError("the local SLM server's answer is not a chat completion") from exc
        if not isinstance(content, str):
            raise SLMError("the local SLM server's answer has no text")
        return content

    @staticmethod
    def _piece(data: str) -> tuple[str, bool]:
        if data.strip() == "[DONE]":
            return "", True
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise SLMError("the local SLM server sent a malformed stream event") from exc
        if not isinstance(event, dict):
            raise SLMError("the local SLM server sent a malformed stream event")
        if "error" in event:
            raise SLMError("the local SLM server reported an error in the stream")
        pieces = [((choice.get("delta") or {}).get("content") or "") for choice in event.get("choices") or []
                  if isinstance(choice, dict) and choice.get("index", 0) == 0]
        return "".join(p for p in pieces if isinstance(p, str)), False
