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

import os
from dataclasses import dataclass
from typing import Any

from privacy_proxy.errors import ConfigError
from privacy_proxy.slm.base import SLM, NoSLM, SLMError, SLMTimeout, SLMUnavailable, render_fallback_prompt
from privacy_proxy.slm.local import TransformersSLM
from privacy_proxy.slm.server import OpenAISLM

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
    common = {"max_tokens": spec.max_tokens, "temperature": spec.temperature, "timeout": spec.timeout_s}
    if spec.backend == "none":
        return NoSLM(**common)
    if spec.backend == "transformers":
        return TransformersSLM(spec.model, device=spec.device, threads=spec.threads, **common)
    if spec.backend == "openai":
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        return OpenAISLM(spec.base_url or "", spec.model or "", api_key=api_key,
                         allow_non_loopback=spec.allow_non_loopback, **common)
    raise ConfigError(f"slm.backend: {spec.backend!r} is not one of none, transformers, openai")
