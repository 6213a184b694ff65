"""Access: client API keys (hashed, per-key policy), the admin key and routes, and the upstream key never
reaching a client — against a real proxy process with the openai SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import Behaviour, FakeUpstream
from privacy_proxy.access import AccessControl, hash_key
from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.loader import parse_policy
from privacy_proxy.policy.model import AccessSettings

KEY_A, KEY_B, KEY_C, ADMIN = "pp-team-a-key", "pp-team-b-key", "pp-team-c-key", "pp-admin-key"
UPSTREAM_SECRET = "sk-upstream-secret"
# team-a's own policy: e-mail addresses are blocked outright.
STRICT_A = TEST_POLICY.replace("name: test", "name: strict-a").replace(
    "entities: [CREDIT_CARD, IBAN_CODE, US_SSN]", "entities: [CREDIT_CARD, IBAN_CODE, US_SSN, EMAIL_ADDRESS]")
ACCESS = f"""
access:
  keys:
    - {{name: team-a, hash: "{hash_key(KEY_A)}", policy: strict-a.yaml}}
    - {{name: team-b, hash: "{hash_key(KEY_B)}"}}
  keys_file: keys.yaml
  admin_key_hash: "{hash_key(ADMIN)}"
"""


@pytest.fixture(scope="module")
def guarded(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    workdir = tmp_path_factory.mktemp("access")
    (workdir / "strict-a.yaml").write_text(STRICT_A)
    (workdir / "keys.yaml").write_text("[]\n")
    running = start_proxy(TEST_POLICY + ACCESS, workdir, upstream_server.base_url)
    yield running
    finish_proxy(running)


def sdk(proxy: ProxyProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)


def chat(proxy: ProxyProcess, key: str | None, text: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{proxy.base_url}/chat/completions", headers=headers, timeout=30,
                      json={"model": "m", "messages": [{"role": "user", "content": text}]})


def records(proxy: ProxyProcess) -> list[dict]:
    return [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]


def test_requests_without_a_valid_key_are_401(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    for key in (None, "wrong-key", ADMIN, KEY_A + "x", KEY_A.upper()):
        response = chat(guarded, key, "hello")
        assert response.status_code == 401, key
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == "invalid_api_key"
        assert response.headers["x-should-retry"] == "false" and response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{guarded.base_url}/models").status_code == 401
    assert fake.requests == []
    with pytest.raises(openai.AuthenticationError):
        sdk(guarded, "wrong-key").chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert guarded.health().status_code == 200  # health stays open


def test_each_key_gets_its_own_policy_and_is_audited_by_name(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    text = "Mail jane@example.com"
    reply = sdk(guarded, KEY_B).chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    assert reply.choices[0].message.content == text
    assert fake.requests[-1].json["messages"][0]["content"] == "Mail [EMAIL_ADDRESS_1]"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(guarded, KEY_A).chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    assert "EMAIL_ADDRESS" in caught.value.response.json()["error"]["message"]
    assert len(fake.requests) == 1
    by_client = {r["client"]: r for r in records(guarded)[-2:]}
    assert by_client["team-b"]["policy"]["name"] == "test" and by_client["team-b"]["decision"] == "forward"
    assert by_client["team-a"]["policy"]["name"] == "strict-a" and by_client["team-a"]["decision"] == "block"
    # A streamed answer is audited when the stream ends, still under the key that asked for it.
    stream = sdk(guarded, KEY_B).chat.completions.create(
        model="m", stream=True, messages=[{"role": "user", "content": "Call John Smith"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Call John Smith"
    last = records(guarded)[-1]
    assert (last["client"], last["stream"], last["policy"]["name"]) == ("team-b", True, "test")


def test_concurrent_clients_never_mix_policies(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    outcomes: dict[str, list[int]] = {KEY_A: [], KEY_B: []}
    lock = threading.Lock()

    def worker(key: str) -> None:
        for i in range(10):
            status = chat(guarded, key, f"note {i}: mail jane{i}@example.com").status_code
            with lock:
                outcomes[key].append(status)

    threads = [threading.Thread(target=worker, args=(key,)) for key in (KEY_A, KEY_B, KEY_A, KEY_B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes[KEY_A] == [403] * 20 and outcomes[KEY_B] == [200] * 20


def test_the_upstream_key_never_reaches_a_client(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        seen.append(json.dumps(dict(response.headers)) + response.text)

    keep(chat(guarded, KEY_B, "hello"))
    fake.push(Behaviour(status=401))
    keep(chat(guarded, KEY_B, "hello"))  # an upstream auth error is relayed, without our key in it
    fake.push(Behaviour(status=500))
    keep(chat(guarded, KEY_B, "hello"))
    keep(chat(guarded, None, "hello"))
    keep(chat(guarded, KEY_B, "{not json"))
    keep(httpx.post(f"{guarded.base_url}/chat/completions", content=b"{bad", headers={"authorization": f"Bearer {KEY_B}"}))
    with httpx.stream("POST", f"{guarded.base_url}/chat/completions", headers={"authorization": f"Bearer {KEY_B}"},
                      json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as streamed:
        seen.append(json.dumps(dict(streamed.headers)) + streamed.read().decode())
    for path in ("/healthz", "/healthz/upstream", "/v1/models", "/v1/models/fake-model", "/v1/embeddings", "/nope",
                 "/admin/audit/verify"):
        keep(httpx.get(f"{guarded.origin}{path}", headers={"authorization": f"Bearer {KEY_B}"}))
    keep(httpx.get(f"{guarded.origin}/admin/audit/verify", headers={"authorization": f"Bearer {ADMIN}"}))
    assert len(seen) == 15 and any("Incorrect API key" in s for s in seen)
    for text in seen:
        assert UPSTREAM_SECRET not in text
    assert all(r.headers["authorization"] == f"Bearer {UPSTREAM_SECRET}" for r in fake.requests)
    for key in (KEY_A, KEY_B, ADMIN):  # client keys are not forwarded, logged or audited either
        assert all(key not in json.dumps(r.headers) for r in fake.requests)
        assert key not in guarded.log() and key not in guarded.audit_path.read_text()
    assert UPSTREAM_SECRET not in guarded.log() + guarded.audit_path.read_text()


def test_admin_routes_need_the_admin_key(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    chat(guarded, KEY_B, "hello")
    url = f"{guarded.origin}/admin/audit/verify"
    for key in (None, KEY_A, KEY_B, "wrong"):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert httpx.post(f"{guarded.origin}/admin/reload", headers=headers).status_code == 401
    verified = httpx.get(url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["ok"] is True and body["records"] >= 1 and body["checkpoints"] >= 1


def test_keys_file_and_admin_reload(guarded: ProxyProcess, fake: FakeUpstream) -> None:
    assert chat(guarded, KEY_C, "hello").status_code == 401
    (guarded.workdir / "keys.yaml").write_text(f'- {{name: team-c, hash: "{hash_key(KEY_C)}"}}\n')
    reloaded = httpx.post(f"{guarded.origin}/admin/reload", headers={"authorization": f"Bearer {ADMIN}"}, timeout=60)
    assert reloaded.status_code == 200 and reloaded.json()["reloaded"] is True
    assert chat(guarded, KEY_C, "hello").status_code == 200
    assert records(guarded)[-1]["client"] == "team-c"
    (guarded.workdir / "keys.yaml").write_text("- {name: broken, hash: md5:abc}\n")
    refused = httpx.post(f"{guarded.origin}/admin/reload", headers={"authorization": f"Bearer {ADMIN}"}, timeout=60)
    assert refused.status_code == 422 and "keys_file" in refused.json()["error"]["message"]
    assert chat(guarded, KEY_C, "hello").status_code == 200  # the running keys were kept


def test_admin_routes_are_off_without_an_admin_key(fake: FakeUpstream, tmp_path: Path) -> None:
    policy = TEST_POLICY + f'access: {{keys: [{{name: only, hash: "{hash_key(KEY_A)}"}}]}}\n'
    proxy = start_proxy(policy, tmp_path, fake.base_url)
    try:
        for key in (KEY_A, ADMIN):
            response = httpx.post(f"{proxy.origin}/admin/reload", headers={"authorization": f"Bearer {key}"})
            assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"
        assert chat(proxy, KEY_A, "hello").status_code == 200
    finally:
        finish_proxy(proxy)


def test_no_access_section_means_no_keys(proxy: ProxyProcess, fake: FakeUpstream) -> None:
    assert chat(proxy, None, "hello").status_code == 200
    assert httpx.get(f"{proxy.origin}/admin/audit/verify").status_code == 403


# --- configuration -------------------------------------------------------------------------------------


def test_access_configuration_errors(tmp_path: Path) -> None:
    digest = hash_key("k")
    with pytest.raises(ConfigError, match="duplicate key names"):
        parse_policy(f'name: p\naccess: {{keys: [{{name: a, hash: "{digest}"}}, {{name: a, hash: "{hash_key("j")}"}}]}}\n')
    with pytest.raises(ConfigError, match="forward_client_authorization"):
        parse_policy(f'name: p\nupstream: {{forward_client_authorization: true}}\naccess: {{keys: [{{name: a, hash: "{digest}"}}]}}\n')
    with pytest.raises(ConfigError, match="hash"):
        parse_policy("name: p\naccess: {keys: [{name: a, hash: 'plain-text-key'}]}\n")
    with pytest.raises(ConfigError, match="its own"):
        AccessControl.from_settings(AccessSettings(keys=[{"name": "a", "hash": digest}], admin_key_hash=digest))
    with pytest.raises(ConfigError, match="cannot read"):
        AccessControl.from_settings(AccessSettings(keys_file=str(tmp_path / "none.yaml")))
    (tmp_path / "keys.yaml").write_text(f'keys: [{{name: a, hash: "{digest}"}}]\n')
    control = AccessControl.from_settings(AccessSettings(keys_file=str(tmp_path / "keys.yaml")))
    assert control.enabled and control.client("k").name == "a" and control.client("K") is None
    assert control.client(None) is None and not control.is_admin("k")
    assert "[secure]" in repr(control.client("k")) and digest[7:] not in repr(control.client("k"))
    (tmp_path / "empty.yaml").write_text("")
    empty = AccessControl.from_settings(AccessSettings(keys_file=str(tmp_path / "empty.yaml")))
    assert empty.enabled and empty.client("k") is None  # an empty key file locks everyone out, not in


def test_a_per_key_policy_may_not_define_keys(fake: FakeUpstream, tmp_path: Path) -> None:
    (tmp_path / "sub.yaml").write_text(TEST_POLICY + f'access: {{keys: [{{name: x, hash: "{hash_key("x")}"}}]}}\n')
    policy = tmp_path / "policy.yaml"
    policy.write_text(TEST_POLICY + f'access: {{keys: [{{name: a, hash: "{hash_key(KEY_A)}", policy: sub.yaml}}]}}\n')
    result = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(policy), "--port", "0"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PRIVACY_PROXY_AUDIT_KEY": "ab" * 32, "PATH": ""})
    assert result.returncode != 0 and "cannot define access keys" in result.stderr


def test_new_key_and_hash_key_commands() -> None:
    made = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "access", "new-key", "--name", "team-x",
                           "--policy", "policies/strict.yaml"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0
    key = made.stderr.rsplit(" ", 1)[-1].strip()
    entry = json.loads(made.stdout.removeprefix("- "))
    assert entry == {"name": "team-x", "hash": hash_key(key), "policy": "policies/strict.yaml"}
    assert key not in made.stdout  # only the hash goes into the policy
    hashed = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "access", "hash-key"], input=key + "\n",
                            capture_output=True, text=True, timeout=60)
    assert hashed.stdout.strip() == hash_key(key)
