"""privacy_proxy.slm: the transformers backend on a tiny model built here, the openai backend against a
fake local server, and the `none` backend. Plumbing, limits, timeouts, concurrency — not prose quality."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fake_slm_server import FakeSLMServer

from privacy_proxy.errors import ConfigError
from privacy_proxy.slm import (
    NoSLM,
    OpenAISLM,
    SLMError,
    SLMTimeout,
    SLMUnavailable,
    TransformersSLM,
    build_slm,
    render_fallback_prompt,
)

SENTENCES = [
    "the patient asked about the private appointment",
    "please write a short note for the meeting",
    "the answer is private and stays on this machine",
    "summarize the report in two sentences",
]
FORCED = "private"  # the tiny model always answers this word
SECRET = "Jane Roe 212-555-0143"
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


def _build(directory: Path, *, chat_template: bool) -> Path:
    """A 2-layer, hidden-16 Phi causal LM whose output bias forces FORCED, and a word-level tokenizer
    trained here on SENTENCES."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>")
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(directory))
    torch.manual_seed(0)
    config = PhiConfig(vocab_size=raw.get_vocab_size(), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=512, bos_token_id=2, eos_token_id=3,
                       pad_token_id=0)
    model = PhiForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.fill_(-10.0)
        model.lm_head.bias[raw.token_to_id(FORCED)] = 10.0
    model.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return _build(tmp_path_factory.mktemp("tiny_slm"), chat_template=True)


@pytest.fixture(scope="module")
def plain_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a tokenizer that has no chat template."""
    d = tmp_path_factory.mktemp("tiny_slm_plain")
    from transformers import AutoTokenizer

    for f in model_dir.iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tok.chat_template = None
    (d / "chat_template.jinja").unlink(missing_ok=True)
    tok.save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def slm(model_dir: Path) -> TransformersSLM:
    return TransformersSLM(model_dir, max_tokens=4, timeout=30)


def ask(text: str = SECRET) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


# --- transformers backend -----------------------------------------------------------------------


def test_lazy_load_then_loaded_once(model_dir: Path) -> None:
    lazy = TransformersSLM(model_dir, max_tokens=2)
    assert not lazy.loaded and lazy.loads == 0  # building it read nothing
    assert lazy.generate(ask()) == f"{FORCED} {FORCED}"
    assert lazy.loaded and lazy.loads == 1
    lazy.generate(ask())
    assert lazy.loads == 1


def test_max_tokens_bounds_the_answer(slm: TransformersSLM) -> None:
    assert slm.generate(ask(), max_tokens=1) == FORCED
    assert slm.generate(ask(), max_tokens=7).split() == [FORCED] * 7
    assert slm.generate(ask()).split() == [FORCED] * 4  # the instance default


def test_sampling_path_runs(slm: TransformersSLM) -> None:
    # With a +10/-10 bias, sampling at a low temperature still gives the forced word.
    assert slm.generate(ask(), max_tokens=3, temperature=0.3).split() == [FORCED] * 3


def test_chat_template_used_when_present(slm: TransformersSLM, plain_dir: Path) -> None:
    prompt = slm.render_prompt(ask("summarize the report"))
    assert prompt == "<s> system : be brief </s> <s> user : summarize the report </s> <s> assistant :"
    plain = TransformersSLM(plain_dir, max_tokens=2)
    fallback = plain.render_prompt(ask("summarize the report"))
    assert fallback == render_fallback_prompt(ask("summarize the report"))
    assert fallback.endswith("### Assistant:\n") and "### User:\nsummarize the report" in fallback
    assert plain.generate(ask()) == f"{FORCED} {FORCED}"


def test_stream_yields_pieces(slm: TransformersSLM) -> None:
    pieces = list(slm.stream(ask(), max_tokens=3))
    assert len(pieces) >= 2
    assert "".join(pieces).split() == [FORCED] * 3


def test_zero_timeout_raises_timeout(slm: TransformersSLM) -> None:
    with pytest.raises(SLMTimeout) as caught:
        slm.generate(ask(), timeout=0)
    assert caught.value.status == 504 and caught.value.code == "slm_timeout"
    assert "Jane" not in str(caught.value)


@pytest.fixture
def slow_slm(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TransformersSLM:
    """A loaded instance whose every forward pass takes 30 ms."""
    model = TransformersSLM(model_dir, max_tokens=500)
    model.render_prompt(ask())  # load
    forward = model._model.forward

    def slow(*args, **kwargs):
        time.sleep(0.03)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model._model, "forward", slow)
    return model


def test_timeout_stops_a_running_generation(slow_slm: TransformersSLM) -> None:
    started = time.monotonic()
    with pytest.raises(SLMTimeout):
        slow_slm.generate(ask(), timeout=0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5  # 500 tokens would take 15 s: generation was stopped, not waited out
    assert slow_slm.generate(ask(), max_tokens=2, timeout=5) == f"{FORCED} {FORCED}"  # lock released


def test_waiting_for_a_busy_model_counts_against_the_timeout(slow_slm: TransformersSLM) -> None:
    busy = threading.Thread(target=lambda: slow_slm.generate(ask(), max_tokens=12, timeout=5))
    busy.start()
    time.sleep(0.1)  # the other call holds the model now
    with pytest.raises(SLMTimeout):
        slow_slm.generate(ask(), max_tokens=1, timeout=0.2)
    busy.join()


def test_concurrent_calls_share_one_load(model_dir: Path) -> None:
    shared = TransformersSLM(model_dir, max_tokens=3)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: shared.generate(ask(f"question {i}")), range(6)))
    assert answers == [f"{FORCED} {FORCED} {FORCED}"] * 6
    assert shared.loads == 1


def test_model_failure_is_an_slm_error_without_the_prompt(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = TransformersSLM(model_dir, max_tokens=2)
    broken.render_prompt(ask())

    def fail(*args, **kwargs):
        raise RuntimeError(f"boom {SECRET}")

    monkeypatch.setattr(broken._model, "forward", fail)
    with pytest.raises(SLMError) as caught:
        broken.generate(ask())
    assert type(caught.value) is SLMError and "Jane" not in caught.value.message
    monkeypatch.undo()
    assert broken.generate(ask()) == f"{FORCED} {FORCED}"  # the lock was released


def test_async_generate_and_stream(slm: TransformersSLM) -> None:
    async def main() -> tuple[str, list[str]]:
        whole = await slm.agenerate(ask(), max_tokens=2)
        pieces = [piece async for piece in slm.astream(ask(), max_tokens=3)]
        return whole, pieces

    whole, pieces = asyncio.run(main())
    assert whole == f"{FORCED} {FORCED}"
    assert "".join(pieces).split() == [FORCED] * 3


def test_leaving_a_stream_early_stops_generation(slow_slm: TransformersSLM) -> None:
    async def main() -> float:
        started = time.monotonic()
        async for _ in slow_slm.astream(ask(), max_tokens=500, timeout=30):
            break
        return time.monotonic() - started

    asyncio.run(main())
    started = time.monotonic()
    assert slow_slm.generate(ask(), max_tokens=1, timeout=5) == FORCED  # waits for the stopped run only
    assert time.monotonic() - started < 2


def test_bad_model_paths_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hub id"):
        TransformersSLM("Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ConfigError, match="not found"):
        TransformersSLM(tmp_path / "missing")
    with pytest.raises(ConfigError, match="config.json"):
        TransformersSLM(tmp_path)


# --- openai backend -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSLMServer]:
    fake = FakeSLMServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def local(server: FakeSLMServer) -> Iterator[FakeSLMServer]:
    server.reset()
    yield server
    server.reset()


def test_openai_generate(local: FakeSLMServer) -> None:
    model = OpenAISLM(local.base_url, "llama3.2:1b", api_key="sk-local", max_tokens=64, temperature=0.1)
    assert model.generate(ask("hello")) == "local: hello"
    sent = local.requests[-1]
    assert sent["model"] == "llama3.2:1b" and sent["max_tokens"] == 64 and sent["temperature"] == 0.1
    assert sent["stream"] is False and sent["messages"][1] == {"role": "user", "content": "hello"}
    assert local.headers[-1]["authorization"] == "Bearer sk-local"
    assert "sk-local" not in repr(model)


def test_openai_stream(local: FakeSLMServer) -> None:
    local.answer = "a generic draft with several pieces"
    model = OpenAISLM(local.base_url, "m")
    pieces = list(model.stream(ask(), max_tokens=8))
    assert len(pieces) > 3 and "".join(pieces) == local.answer
    assert local.requests[-1]["stream"] is True and local.requests[-1]["max_tokens"] == 8


def test_openai_content_parts_become_text(local: FakeSLMServer) -> None:
    model = OpenAISLM(local.base_url, "m")
    parts = [{"type": "text", "text": "one "}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "two"}]
    assert model.generate([{"role": "user", "content": parts}]) == "local: one two"


def test_openai_timeout_before_the_answer(local: FakeSLMServer) -> None:
    local.delay = 2.0
    model = OpenAISLM(local.base_url, "m", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(SLMTimeout):
        model.generate(ask())
    with pytest.raises(SLMTimeout):
        list(model.stream(ask()))
    assert time.monotonic() - started < 1.5


def test_openai_stream_trickling_past_the_deadline(local: FakeSLMServer) -> None:
    # Each chunk arrives well inside the per-read timeout, but the whole answer would take ~4 s.
    local.answer, local.piece_chars, local.piece_delay = "x" * 40, 1, 0.1
    model = OpenAISLM(local.base_url, "m", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SLMTimeout):
        list(model.stream(ask()))
    assert time.monotonic() - started < 1.5


def test_openai_http_error_without_the_prompt(local: FakeSLMServer) -> None:
    local.status = 500
    with pytest.raises(SLMError) as caught:
        OpenAISLM(local.base_url, "m").generate(ask())
    assert "HTTP 500" in caught.value.message and "Jane" not in caught.value.message


def test_openai_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(SLMUnavailable):
        OpenAISLM(f"http://127.0.0.1:{port}/v1", "m", timeout=2).generate(ask())


@pytest.mark.parametrize("url", ["http://10.0.0.5:11434/v1", "https://api.openai.com/v1", "http://example.com/v1"])
def test_openai_refuses_non_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        OpenAISLM(url, "m")
    assert OpenAISLM(url, "m", allow_non_loopback=True).base_url == url  # explicit opt-in, nothing sent


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434/v1", "http://localhost:8080/v1", "http://[::1]:8000/v1"])
def test_openai_accepts_loopback(url: str) -> None:
    assert OpenAISLM(url, "m").base_url == url


# --- none and the factory -----------------------------------------------------------------------


def test_none_backend_is_unavailable() -> None:
    none = build_slm(None)
    assert isinstance(none, NoSLM) and not none.available
    with pytest.raises(SLMUnavailable, match="slm.backend: none"):
        none.generate(ask())
    with pytest.raises(SLMUnavailable):
        asyncio.run(none.agenerate(ask()))


def test_build_from_policy_settings(model_dir: Path, local: FakeSLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from privacy_proxy.policy.model import SLMSettings

    built = build_slm(SLMSettings(backend="transformers", model=str(model_dir), max_tokens=2, timeout_s=9))
    assert isinstance(built, TransformersSLM) and built.max_tokens == 2 and built.timeout == 9 and not built.loaded
    monkeypatch.setenv("LOCAL_SLM_KEY", "sk-env")
    remote = build_slm(SLMSettings(backend="openai", base_url=local.base_url, model="m", api_key_env="LOCAL_SLM_KEY"))
    assert remote.generate(ask("x")) == "local: x"
    assert local.headers[-1]["authorization"] == "Bearer sk-env"
