"""Credentials pasted into prompts: found by `sanitizers.recognizers.secrets`, never sent upstream."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import ProxyProcess
from fake_upstream import FakeUpstream

from sanitizers.recognizers.secrets import find_secrets


def found(text: str) -> list[tuple[str, str]]:
    return sorted((d.entity, text[d.start:d.end]) for d in find_secrets(text))


@pytest.mark.parametrize(("text", "expected"), [
    ('uhaul_username = "kj046613"\nuhaul_password = "Beltline@1221"',
     [("SECRET", "Beltline@1221"), ("USERNAME", "kj046613")]),
    ('{"api_key": "a8f5f167f44f4964e6c998dee827110c"}', [("SECRET", "a8f5f167f44f4964e6c998dee827110c")]),
    ("export OPENAI_API_KEY=sk-proj-4fJ2kL9mN0pQ7rS1tU3vW5xY", [("SECRET", "sk-proj-4fJ2kL9mN0pQ7rS1tU3vW5xY")]),
    ("DB_PASSWORD=Tr0ub4dor&3 npm start", [("SECRET", "Tr0ub4dor&3")]),
    ("LOAD DATABASE FROM mysql://ariel:s3cr3t@db.internal/app", [("SECRET", "s3cr3t"), ("USERNAME", "ariel")]),
    ("my wifi password: Hunter2!", [("SECRET", "Hunter2!")]),
    ('curl -d "client_id=1000.0SRSZSY37WMZ69405H3" -d "code=1000.dd7e47321d48b8a7e312e3d6"',
     [("SECRET", "1000.0SRSZSY37WMZ69405H3"), ("SECRET", "1000.dd7e47321d48b8a7e312e3d6")]),
    ("key AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36, [("SECRET", "AKIAIOSFODNN7EXAMPLE"), ("SECRET", "ghp_" + "a" * 36)]),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----",
     [("SECRET", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----")]),
])
def test_credentials_are_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    'password = "your_password"',  # a placeholder
    'token = os.environ["GITHUB_TOKEN"]',  # read from elsewhere
    'api_key: "${API_KEY}"',
    "max_tokens=100, TOKEN_LIMIT=100",  # names that only contain the word
    "User: hello there",  # a chat transcript
    "Secret: the key to success is patience.",  # prose, not a password
    "The password policy needs 12 characters.",
    '{"state": "California", "code": "print(x)", "zip_code": "94103"}',  # short or plain values
])
def test_not_credentials(text: str) -> None:
    assert found(text) == []


def test_credentials_never_reach_the_upstream(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    prompt = ('Why does this fail?\nuhaul_username = "kj046613"\nuhaul_password = "Beltline@1221"\n'
              "requests.get(url, headers={'Authorization': 'Bearer sk-live-9a8b7c6d5e4f3g2h1i0jKLMN'})")
    client = openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)
    answer = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": prompt}])
    sent = json.dumps(fake.requests[-1].json)
    for value in ("kj046613", "Beltline@1221", "sk-live-9a8b7c6d5e4f3g2h1i0jKLMN"):
        assert value not in sent
    assert "[SECRET_1]" in sent and "[USERNAME_1]" in sent
    assert answer.choices[0].message.content == prompt  # the fake echoes; the proxy restored every value
