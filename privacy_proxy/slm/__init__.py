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
from typing import TYPE_CHECKING

from privacy_proxy.errors import ConfigError
from privacy_proxy.slm.base import (
    SLM,
    NoSLM,
    SLMError,
    SLMTimeout,
    SLMUnavailable,
    render_fallback_prompt,
)
from privacy_proxy.slm.local import TransformersSLM
from privacy_proxy.slm.server import OpenAISLM

if TYPE_CHECKING:
    from privacy_proxy.policy.strategy import SLMSettings

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


def build_slm(settings: SLMSettings | None = None) -> SLM:
    """The backend the policy's `slm:` section names (None: `none`).

    Cheap: nothing is loaded or contacted here; static mistakes raise `ConfigError`.
    """
    if settings is None:
        return NoSLM()
    common = {"max_tokens": settings.max_tokens, "temperature": settings.temperature, "timeout": settings.timeout_s}
    if settings.backend == "none":
        return NoSLM(**common)
    if settings.backend == "transformers":
        return TransformersSLM(settings.model, device=settings.device, threads=settings.threads, **common)
    if settings.backend == "openai":
        api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        return OpenAISLM(settings.base_url or "", settings.model or "", api_key=api_key,
                         allow_non_loopback=settings.allow_non_loopback, **common)
    raise ConfigError(f"slm.backend: {settings.backend!r} is not one of none, transformers, openai")
