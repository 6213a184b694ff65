"""The shipped policies, end to end through a real proxy process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from conftest import AUDIT_KEY, ROOT, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import Behaviour, FakeUpstream

EMAIL, PHONE, IP = "jane.roe@example.com", "212-555-0142", "10.1.2.3"
PROMPT = f"Mail {EMAIL} or call {PHONE} from {IP} today. Thanks, write to {EMAIL} again."


def shipped_policy_proxy(name: str, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    running = start_proxy((ROOT / f"policies/{name}.yaml").read_text(), tmp_path_factory.mktemp(name), upstream.base_url)
    yield running
    finish_proxy(running)


def ask(proxy: ProxyProcess, prompt: str, stream: bool) -> str:
    """One user message through the proxy with the openai SDK; the answer's text, streamed or not."""
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    kwargs = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        return "".join(c.delta.content or "" for chunk in sdk.chat.completions.create(stream=True, **kwargs)
                       for c in chunk.choices)
    return sdk.chat.completions.create(**kwargs).choices[0].message.content or ""


@pytest.fixture(scope="module")
def strict(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    yield from shipped_policy_proxy("strict", upstream_server, tmp_path_factory)


@pytest.mark.parametrize("stream", [False, True])
def test_strict_policy_sends_surrogates_and_restores_them(strict: ProxyProcess, fake: FakeUpstream, stream: bool) -> None:
    text = ask(strict, PROMPT, stream)
    sent = fake.requests[-1].json["messages"][0]["content"]
    for value in (EMAIL, PHONE, IP):
        assert value not in sent
    surrogate_mail = re.search(r"[\w.+-]+@example\.com", sent)
    assert surrogate_mail and sent.count(surrogate_mail.group(0)) == 2  # same value, same surrogate
    hashed_ip = re.search(r"\[IP_ADDRESS:[0-9a-f]{10}\]", sent)
    assert hashed_ip
    # Surrogates come back as the originals; a keyed hash is one-way by design.
    assert text == PROMPT.replace(IP, hashed_ip.group(0))


def test_strict_policy_blocks_identifiers(strict: ProxyProcess, fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=strict.base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "IBAN GB82 WEST 1234 5698 7654 32"}])
    assert fake.requests == []


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script for a terminal")
def test_scan_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": f"mail user{i}@example.com"}) + "\n" for i in range(5)))
    command = (f"stty cols 100 rows 40; {sys.executable} -m privacy_proxy.cli scan "
               f"--policy {ROOT / 'policies/default.yaml'} {source} > {tmp_path / 'out.jsonl'}")
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY})
    assert "5/5" in result.stdout and "line/s" in result.stdout
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 5 and "[EMAIL_ADDRESS_1]" in json.loads(lines[0])["outbound"][0]


def test_default_policy_catches_a_phone_number_without_context_words() -> None:
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import Runtime
    from privacy_proxy.scan import scan_item

    runtime = Runtime.build(load_policy(ROOT / "policies/default.yaml"), b"k" * 32)
    out = scan_item({"id": 1, "text": "I'm moving; call me at 212-555-0143. Order 12345678 totals 4500."}, runtime)
    assert out["outbound"] == ["I'm moving; call me at [PHONE_NUMBER_1]. Order 12345678 totals 4500."]


@pytest.fixture(scope="module")
def default(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """The shipped default policy: built-in NER (loaded from package data, offline) plus gazetteers."""
    yield from shipped_policy_proxy("default", upstream_server, tmp_path_factory)


@pytest.mark.parametrize("stream", [False, True])
def test_default_policy_finds_names_places_and_organizations(default: ProxyProcess, fake: FakeUpstream,
                                                             stream: bool) -> None:
    prompt = ("Hi, I'm Priyanka Raman, a nurse at Northwind Health in Leeds. Draft a note to my manager "
              "Tobias Lindqvist saying I'm moving to Rotterdam in June. Thanks, Priyanka")
    fake.push(Behaviour(answer="Dear [PERSON_2], [PERSON_1] from [ORGANIZATION_1] will move to [LOCATION_2]."))
    text = ask(default, prompt, stream)
    sent = fake.requests[-1].json["messages"][0]["content"]
    for value in ("Priyanka", "Raman", "Northwind", "Leeds", "Tobias", "Lindqvist", "Rotterdam"):
        assert value not in sent
    # Numbered in order of appearance; the second "Priyanka" gets the same token as the first mention's name.
    assert sent.startswith("Hi, I'm [PERSON_1], a nurse at [ORGANIZATION_1] in [LOCATION_1].")
    assert "[PERSON_2]" in sent and "[LOCATION_2]" in sent
    assert text == "Dear Tobias Lindqvist, Priyanka Raman from Northwind Health will move to Rotterdam."
