"""Token-id arrays in completions prompts and embeddings inputs: decode them to text, offline, or refuse.

Token ids cannot be scanned as they are. LangChain's `OpenAIEmbeddings` sends them by default, so the
proxy decodes them with tiktoken when tiktoken is installed, the model's encoding is known, and the
encoding's file is already on this machine. tiktoken downloads that file at first use; the proxy
never lets it (no network but the upstream): it looks for the file where tiktoken caches it
(`TIKTOKEN_CACHE_DIR`, else `DATA_GYM_CACHE_DIR`, else `<tmp>/data-gym-cache`, named by the SHA-1 of
its URL), checks its SHA-256, and only then asks tiktoken for the encoding, which reads that file.

The decoded, scanned text is what goes upstream (never the original ids), so what leaves is exactly
what was scanned, whatever the file holds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from privacy_proxy.errors import BadRequest
from privacy_proxy.openai.request import TextRequest

_BASE = "https://openaipublic.blob.core.windows.net/encodings"
# The encodings of OpenAI's models: the URL tiktoken fetches (its cache key) and the file's SHA-256.
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": (f"{_BASE}/o200k_base.tiktoken", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": (f"{_BASE}/cl100k_base.tiktoken", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "p50k_base": (f"{_BASE}/p50k_base.tiktoken", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "r50k_base": (f"{_BASE}/r50k_base.tiktoken", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),
}


class TokenDecoder(Protocol):
    n_vocab: int

    def decode(self, tokens: list[int]) -> str: ...


def tiktoken_cache_dir() -> Path:
    """Where tiktoken keeps downloaded encoding files (its own lookup order)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(variable):
            return Path(os.environ[variable])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


_loaded: dict[str, TokenDecoder] = {}
_lock = threading.Lock()


def find_decoder(model: str) -> tuple[TokenDecoder | None, str]:
    """The decoder for `model`'s encoding, or None and why not. Never touches the network."""
    try:
        import tiktoken
        import tiktoken.model
    except ImportError:
        return None, "tiktoken is not installed"
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return None, "the model's token encoding is not known to tiktoken"
    with _lock:
        if name in _loaded:
            return _loaded[name], ""
        if name not in ENCODING_FILES:
            return None, f"the {name} encoding cannot be loaded offline"
        url, sha256 = ENCODING_FILES[name]
        cached = tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()
        if not cached.is_file():
            return None, f"the {name} encoding file is not on this machine (tiktoken cache {tiktoken_cache_dir()})"
        if hashlib.sha256(cached.read_bytes()).hexdigest() != sha256:
            # tiktoken would delete a mismatching file and download it again: never let it get there.
            return None, f"the cached {name} encoding file does not match its checksum"
        _loaded[name] = tiktoken.get_encoding(name)
        return _loaded[name], ""


def token_arrays(value: Any) -> list[list[int]] | None:
    """`[1, 2]` → `[[1, 2]]`; `[[1, 2], [3]]` → as is; anything else (text) → None."""
    if not isinstance(value, list) or not value:
        return None
    if all(_is_token(item) for item in value):
        return [value]
    if all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in value):
        return value
    return None


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def take_token_arrays(request: TextRequest, key: str, mode: str, client_hint: str) -> None:
    """Handle `request.body[key]` holding token ids, as the policy's `content.token_arrays` says.

    detokenize: replace the ids by their text (a string for one array, else a list of strings) and
    register it for scanning; refuse: 400; allow: leave the ids, mark the request partly unscanned.
    """
    arrays = token_arrays(request.body[key])
    assert arrays is not None
    if mode == "allow":
        request.unscanned = "token_arrays_unscanned"
        return
    why = "the policy refuses token ids (content.token_arrays: refuse)"
    decoder = None
    if mode == "detokenize":
        decoder, why = find_decoder(request.model)
    if decoder is None:
        raise BadRequest(
            f"'{key}' holds token ids, which privacy-proxy cannot scan: {why}. Send text instead. {client_hint}",
            param=key,
            code="token_ids_not_supported",
        )
    texts = []
    for ids in arrays:
        try:
            if any(token >= decoder.n_vocab for token in ids):
                raise ValueError("token id out of range")
            texts.append(decoder.decode(ids))
        except (KeyError, ValueError, OverflowError):
            raise BadRequest(f"'{key}' holds token ids outside the model's vocabulary", param=key) from None
    flat = not isinstance(request.body[key][0], list)
    request.body[key] = texts[0] if flat else texts
    _register_texts(request, key)


def take_text_input(request: TextRequest, key: str, mode: str, client_hint: str) -> None:
    """Register `request.body[key]` for scanning: a string, an array of strings, or token ids (decoded,
    refused or let through as `take_token_arrays` says); anything else is a 400."""
    value = request.body.get(key)
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        _register_texts(request, key)
    elif token_arrays(value) is not None:
        take_token_arrays(request, key, mode, client_hint)
    else:
        raise BadRequest(f"'{key}' is required: a string, an array of strings, or token ids", param=key)


def _register_texts(request: TextRequest, key: str) -> None:
    value = request.body[key]
    if isinstance(value, str):
        request.add(request.body, key, key)
    else:
        for index in range(len(value)):
            request.add(value, index, f"{key}[{index}]")
