"""The local small language model (SLM): one interface, three backends, chosen by the policy's `slm:`.

    SLM.generate(messages, *, max_tokens, temperature, timeout) -> str
    SLM.stream(messages, ...) -> Iterator[str]              text pieces as they are produced
    await SLM.agenerate(...) / async for piece in SLM.astream(...)   the same, off the event loop

Backends:
- `transformers`: any local causal-LM directory (`save_pretrained` output) via transformers + torch
  (`pip install 'privacy-proxy[ml]'`). Loaded on first use, never downloaded (`local_files_only`); one
  generation at a time per model (a lock), the wait counted against the timeout. The tokenizer's chat
  template is used when it has one, else a plain "### Role:" template.
- `openai`: an OpenAI-compatible server on this machine (Ollama, llama.cpp, vLLM), `/chat/completions`
  over httpx. The base URL must be loopback unless `allow_non_loopback` is set: prompts sent to the SLM
  are the raw, private ones.
- `none`: every call raises `SLMUnavailable`; callers fall back (rules) or block.

Errors (all `ProxyError`s, value-free messages):

    SLMError         the model failed (503)
    ├── SLMUnavailable   not configured, not installed, server unreachable (503)
    └── SLMTimeout       no complete answer within the timeout (504)

A bad configuration (missing directory, hub id, remote URL) is a `ConfigError` raised when the backend
is built, i.e. at policy load, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from privacy_proxy.errors import ConfigError, ProxyError
from privacy_proxy.policy.model import is_loopback_url
from privacy_proxy.sse import SSEDecoder

__all__ = [
    "SLM",
    "NoSLM",
    "OpenAISLM",
    "SLMError",
    "SLMTimeout",
    "SLMUnavailable",
    "TransformersSLM",
    "build_slm",
    "render_fallback_prompt",
]

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


def _model_dir(path: str | os.PathLike[str] | None) -> Path:
    if not path:
        raise ConfigError("slm.model: the transformers backend needs a local model directory")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_dir():
        looks_like_hub_id = "/" in str(path) and not p.is_absolute() and not str(path).startswith(".")
        hint = (" It looks like a Hugging Face hub id: models are never downloaded; save it with "
                "`save_pretrained` and give that directory." if looks_like_hub_id else "")
        raise ConfigError(f"slm.model: local model directory not found: {p}.{hint}")
    if not (p / "config.json").is_file():
        raise ConfigError(f"slm.model: {p} holds no config.json; expected a directory written by save_pretrained")
    return p


class TransformersSLM(SLM):
    """A local causal LM. Thread-safe: loading and generation are serialized per instance."""

    backend = "transformers"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", threads: int | None = None,
                 max_tokens: int = 512, temperature: float = 0.0, timeout: float = 30.0) -> None:
        super().__init__(max_tokens=max_tokens, temperature=temperature, timeout=timeout)
        self.path = _model_dir(path)
        self.device = device
        self.threads = threads
        self._lock = threading.Lock()  # one generation (or the load) at a time
        self._model: Any = None
        self._tokenizer: Any = None
        self.loads = 0  # how many times the weights were read (1 after first use)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        """Called with the lock held."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local_files_only is passed too
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise SLMUnavailable(f"slm.backend transformers needs torch and transformers: {INSTALL_HINT}") from exc
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(self.path), local_files_only=True)
            model.to(self.device)
            model.eval()
        except Exception as exc:
            raise SLMUnavailable(f"could not load the local SLM from {self.path} ({type(exc).__name__})") from exc
        self._tokenizer, self._model = tokenizer, model
        self.loads += 1

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees (loads the tokenizer on first use)."""
        with self._lock:
            self._load()
        return self._render(_plain_messages(messages))[0]

    def _render(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """Prompt text, and whether the tokenizer should add its own special tokens to it."""
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), False
        return render_fallback_prompt(messages), True

    def _prompt_ids(self, messages: list[dict[str, str]]) -> Any:
        text, add_special = self._render(messages)
        return self._tokenizer(text, return_tensors="pt", add_special_tokens=add_special).to(self.device)

    def stream(self, messages: Sequence[Message], *, max_tokens: int | None = None,
               temperature: float | None = None, timeout: float | None = None) -> Iterator[str]:
        max_tokens, temperature, timeout = self._options(max_tokens, temperature, timeout)
        deadline = _Deadline(timeout)
        plain = _plain_messages(messages)  # validate before taking the lock
        if deadline.passed() or not self._lock.acquire(timeout=max(deadline.left(), 0.0)):
            raise SLMTimeout("the local SLM did not answer in time (waiting for the model)")
        try:
            self._load()
            if deadline.passed():
                raise SLMTimeout("the local SLM did not answer in time (loading)")
            yield from self._generate_locked(plain, max_tokens, temperature, deadline)
        finally:
            self._lock.release()

    def _generate_locked(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                         deadline: _Deadline) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()
        timed_out = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                if deadline.passed():
                    timed_out.set()
                done = stop.is_set() or timed_out.is_set()
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        tok, model = self._tokenizer, self._model
        inputs = self._prompt_ids(messages)
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(
            **inputs, max_new_tokens=max_tokens, streamer=streamer, pad_token_id=pad,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
        )
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
                streamer.on_finalized_text("", stream_end=True)

        worker = threading.Thread(target=run, name="slm-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if timed_out.is_set():
                    break
                if piece:
                    yield piece
        finally:
            stop.set()  # also when the consumer leaves early
            worker.join()
        if failure:
            raise SLMError(f"the local SLM failed ({type(failure[0]).__name__})") from failure[0]
        if timed_out.is_set():
            raise SLMTimeout("the local SLM did not finish within the timeout")


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


@dataclass(frozen=True)
class _Spec:
    """The fields of the policy's `slm:` section this module reads (duck-typed: SLMSettings or a test double)."""

    backend: str = "none"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    device: str = "cpu"
    threads: int | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 30.0
    allow_non_loopback: bool = False


def build_slm(settings: Any | None = None) -> SLM:
    """The backend the policy's `slm:` section names (an `SLMSettings`, or None for `none`).

    Cheap: nothing is loaded or contacted here; static mistakes raise `ConfigError`.
    """
    spec = settings if settings is not None else _Spec()
    common = dict(max_tokens=spec.max_tokens, temperature=spec.temperature, timeout=spec.timeout_s)
    if spec.backend == "none":
        return NoSLM(**common)
    if spec.backend == "transformers":
        return TransformersSLM(spec.model, device=spec.device, threads=spec.threads, **common)
    if spec.backend == "openai":
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        return OpenAISLM(spec.base_url or "", spec.model or "", api_key=api_key,
                         allow_non_loopback=spec.allow_non_loopback, **common)
    raise ConfigError(f"slm.backend: {spec.backend!r} is not one of none, transformers, openai")
