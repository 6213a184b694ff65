"""`slm.backend: transformers` — a local causal-LM directory run with transformers + torch."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from privacy_proxy.errors import ConfigError
from privacy_proxy.slm.base import (
    INSTALL_HINT,
    SLM,
    Message,
    SLMError,
    SLMTimeout,
    SLMUnavailable,
    _Deadline,
    _plain_messages,
    render_fallback_prompt,
)


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
