"""The SLM interface, its errors, and the `none` backend (see privacy_proxy.slm for the overview)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from privacy_proxy.errors import ProxyError

Message = Mapping[str, Any]
INSTALL_HINT = "pip install 'privacy-proxy[ml]'"


class SLMError(ProxyError):
    status = 503
    code = "slm_failed"


class SLMUnavailable(SLMError):
    code = "slm_unavailable"


class SLMTimeout(SLMError):
    status = 504
    code = "slm_timeout"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text parts reach a text model
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise SLMError("SLM messages need text content")


def _plain_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if not messages:
        raise SLMError("SLM called without messages")
    return [{"role": str(m.get("role", "user")), "content": _text_of(m.get("content"))} for m in messages]


def render_fallback_prompt(messages: Sequence[Message]) -> str:
    """The prompt for a tokenizer without a chat template: role headings, then the assistant's turn."""
    lines = [f"### {m['role'].capitalize()}:\n{m['content']}\n" for m in _plain_messages(messages)]
    return "\n".join(lines) + "\n### Assistant:\n"


class _Deadline:
    def __init__(self, timeout: float) -> None:
        self.at = time.monotonic() + max(0.0, timeout)

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


class SLM:
    """Base of the backends: sync `generate`/`stream`, async wrappers that run them in a worker thread."""

    backend = "base"

    def __init__(self, *, max_tokens: int = 512, temperature: float = 0.0, timeout: float = 30.0) -> None:
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout = timeout

    @property
    def available(self) -> bool:
        return True

    def _options(self, max_tokens: int | None, temperature: float | None, timeout: float | None) -> tuple[int, float, float]:
        return (
            self.max_tokens if max_tokens is None else max_tokens,
            self.temperature if temperature is None else temperature,
            self.timeout if timeout is None else timeout,
        )

    def generate(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                 temperature: float | None = None, timeout: float | None = None) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout))

    def stream(self, messages: Sequence[Message], *, max_tokens: int | None = None,
               temperature: float | None = None, timeout: float | None = None) -> Iterator[str]:
        raise NotImplementedError

    async def agenerate(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                        temperature: float | None = None, timeout: float | None = None) -> str:
        return await asyncio.to_thread(
            self.generate, messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )

    async def astream(self, messages: Sequence[Message], *, max_tokens: int | None = None,
                      temperature: float | None = None, timeout: float | None = None) -> AsyncIterator[str]:
        """Pieces of `stream`, produced in a worker thread. Leaving the loop early stops the generation."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def post(kind: str, value: Any) -> None:
            if stop.is_set():
                return  # the consumer left; its loop may be gone
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop closed meanwhile
                stop.set()

        def work() -> None:
            pieces = self.stream(messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout)
            try:
                for piece in pieces:
                    if stop.is_set():
                        break
                    post("piece", piece)
                post("end", None)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                post("error", exc)
            finally:
                pieces.close()  # type: ignore[attr-defined]

        worker = threading.Thread(target=work, name=f"slm-{self.backend}", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "piece":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()


class NoSLM(SLM):
    """`slm.backend: none`."""

    backend = "none"

    @property
    def available(self) -> bool:
        return False

    def stream(self, messages: Sequence[Message], **_: Any) -> Iterator[str]:
        raise SLMUnavailable("no local SLM is configured (slm.backend: none)")
        yield ""  # pragma: no cover - makes this a generator like the others
