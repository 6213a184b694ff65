"""The Redis vault against a real redis-server: the `Vault` contract, sealing exactly as SQLite seals (no
plaintext in Redis or its dump, wrong keys and moved or altered values fail closed), expiry by Redis and by
the sealed time, rotation, failing closed when Redis is down; then two proxy replicas sharing it, one
Responses conversation moving between them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis
from conftest import AUDIT_KEY, TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import Behaviour, FakeUpstream
from redis_server import RedisServer
from vault_checks import VALUES, check_put_get_delete_overwrite, hammer, ring

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.loader import parse_policy
from privacy_proxy.vault import Vault, VaultError, open_vault
from privacy_proxy.vault_crypto import key_id, load_keyring
from privacy_proxy.vault_redis import RedisVault, open_redis_vault

KEY_A, KEY_B = "a1" * 32, "b2" * 32
PREFIX = "pp-test:"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the test server; the database is emptied before each test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def make_vault(redis_server: RedisServer, raw: redis.Redis) -> Iterator:
    made: list[RedisVault] = []

    def make(*keys: str, default_ttl_s: float | None = None, clock=time.time, prefix: str = PREFIX) -> RedisVault:
        vault = RedisVault(redis_server.client(), ring(*(keys or (KEY_A,))), default_ttl_s,
                           prefix=prefix, where=redis_server.url, clock=clock)
        made.append(vault)
        return vault

    yield make
    for vault in made:
        vault.close()


def names(raw: redis.Redis) -> list[bytes]:
    return sorted(raw.scan_iter(match="*"))


# --- the contract --------------------------------------------------------------------------------------


def test_put_get_delete_overwrite(make_vault, raw: redis.Redis) -> None:
    vault: Vault = make_vault()
    check_put_get_delete_overwrite(vault)
    assert names(raw) == []


def test_names_are_prefixed_and_unambiguous(make_vault, raw: redis.Redis) -> None:
    vault = make_vault()
    vault.put("a:b", "c", {"v": 1})
    vault.put("a", "b:c", {"v": 2})
    vault.put("50%", "client/resp_1", {"v": 3})
    assert names(raw) == [b"pp-test:50%25:client/resp_1", b"pp-test:a%3Ab:c", b"pp-test:a:b:c"]
    got = (vault.get("a:b", "c"), vault.get("a", "b:c"), vault.get("50%", "client/resp_1"))
    assert got == ({"v": 1}, {"v": 2}, {"v": 3})
    other = make_vault(prefix="pp-other:")  # another prefix is another vault in the same database
    assert other.get("a:b", "c") is None
    with pytest.raises(VaultError, match="strings"):
        vault.put("s", 5, {"v": 1})  # type: ignore[arg-type]
    with pytest.raises(VaultError, match="JSON"):
        vault.put("s", "k", {"v": float("nan")})


def test_concurrent_puts_and_gets(make_vault) -> None:
    vault = make_vault()
    hammer(vault, threads=8, per_thread=50)
    assert vault.key_ids_in_use() == {key_id(bytes.fromhex(KEY_A)): 400}


# --- what Redis holds ------------------------------------------------------------------------------------


def test_redis_holds_no_plaintext_value(make_vault, raw: redis.Redis, redis_server: RedisServer) -> None:
    vault = make_vault()
    for i, value in enumerate(VALUES):
        vault.put("conv", f"c{i}", {"restorable": {f"[X_{i}]": value}, "protected": [value]})
    vault.put("conv", "c-deleted", {"protected": ["deleted.value@example.org"]})
    vault.delete("conv", "c-deleted")
    every_key = names(raw)
    assert len(every_key) == len(VALUES)
    dumped = b"".join(name + (raw.get(name) or b"") + (raw.dump(name) or b"") for name in every_key)
    raw.save()  # the server's own snapshot file too
    snapshot = (redis_server.workdir / "dump.rdb").read_bytes()
    for data in (dumped, snapshot):
        assert len(data) > 200
        for value in [*VALUES, "deleted.value@example.org", "[X_0]", "restorable", "protected"]:
            for form in (value.encode(), value.encode("utf-16-le"), value.encode("unicode_escape")):
                assert form not in data, value
    for name in every_key:
        assert raw.get(name).startswith(b"ppv1" + key_id(bytes.fromhex(KEY_A)).encode())
    assert make_vault().get("conv", "c1") == {"restorable": {"[X_1]": VALUES[1]}, "protected": [VALUES[1]]}


def test_wrong_key_fails_closed(make_vault, redis_server: RedisServer) -> None:
    make_vault(KEY_A).put("s", "k", {"v": VALUES[0]})
    with pytest.raises(VaultError, match="none of its records") as caught:
        make_vault(KEY_B)
    assert KEY_B not in str(caught.value) and KEY_A not in str(caught.value)
    both = make_vault(KEY_A, KEY_B)
    both.put("s", "new", {"v": 1})
    only_b = RedisVault(redis_server.client(), ring(KEY_B), prefix=PREFIX)  # some records are readable
    assert only_b.get("s", "new") == {"v": 1}
    with pytest.raises(VaultError, match="not in the key ring"):
        only_b.get("s", "k")
    only_b.close()
    with pytest.raises(VaultError, match="closed"):
        only_b.get("s", "new")


def test_values_cannot_be_altered_moved_or_given_more_time(make_vault, raw: redis.Redis) -> None:
    vault = make_vault(default_ttl_s=60)
    for who in ("alice", "bob", "carol", "dave"):
        vault.put("conv", who, {"v": f"{who}'s mapping"})
    alice, bob = raw.get(f"{PREFIX}conv:alice"), raw.get(f"{PREFIX}conv:bob")
    raw.set(f"{PREFIX}conv:alice", bob)  # swapped
    raw.set(f"{PREFIX}conv:bob", alice[:-1] + bytes([alice[-1] ^ 1]))  # one bit flipped
    raw.set(f"{PREFIX}other:carol", raw.get(f"{PREFIX}conv:carol"))  # moved to another scope
    dave = raw.get(f"{PREFIX}conv:dave")
    later = int.from_bytes(dave[20:28], "big") + 86_400_000
    raw.set(f"{PREFIX}conv:dave", dave[:20] + later.to_bytes(8, "big") + dave[28:])  # expiry pushed back
    for scope, key in (("conv", "alice"), ("conv", "bob"), ("other", "carol"), ("conv", "dave")):
        with pytest.raises(VaultError, match="altered or moved"):
            vault.get(scope, key)
    raw.set(f"{PREFIX}conv:eve", b"not a vault record")
    with pytest.raises(VaultError, match="malformed"):
        vault.get("conv", "eve")
    assert vault.purge_expired() == 0 and raw.exists(f"{PREFIX}conv:eve") == 1  # left alone, not counted
    assert sum(vault.key_ids_in_use().values()) == 5


# --- expiry ------------------------------------------------------------------------------------------------


def test_ttl_is_redis_expiry(make_vault, raw: redis.Redis) -> None:
    vault = make_vault(default_ttl_s=3600)
    vault.put("s", "short", {"v": 1}, ttl_s=0.3)
    vault.put("s", "long", {"v": 2})
    assert 0 < raw.pttl(f"{PREFIX}s:short") <= 300
    assert 3_590_000 < raw.pttl(f"{PREFIX}s:long") <= 3_600_000
    time.sleep(0.45)
    assert raw.exists(f"{PREFIX}s:short") == 0  # Redis dropped it by itself
    assert vault.get("s", "short") is None and vault.get("s", "long") == {"v": 2}
    no_ttl = make_vault()
    no_ttl.put("s", "forever", {"v": 3})
    assert raw.pttl(f"{PREFIX}s:forever") == -1 and no_ttl.get("s", "forever") == {"v": 3}


def test_sealed_expiry_holds_when_the_redis_ttl_is_removed(make_vault, raw: redis.Redis) -> None:
    clock = Clock()
    vault = make_vault(default_ttl_s=100, clock=clock)
    vault.put("s", "a", {"v": 1})
    vault.put("s", "b", {"v": 2})
    vault.put("s", "c", {"v": 3}, ttl_s=1000)
    raw.persist(f"{PREFIX}s:a")
    raw.persist(f"{PREFIX}s:b")
    clock.now += 101
    assert vault.get("s", "a") is None and raw.exists(f"{PREFIX}s:a") == 0
    assert vault.purge_expired() == 1 and raw.exists(f"{PREFIX}s:b") == 0
    assert vault.get("s", "c") == {"v": 3} and vault.purge_expired() == 0


# --- rotation --------------------------------------------------------------------------------------------


def test_vault_rotate_command_reseals_redis_records(make_vault, raw: redis.Redis, redis_server: RedisServer,
                                                   tmp_path: Path) -> None:
    """`privacy-proxy vault rotate` with a key file: a new key is added and every Redis record re-sealed."""
    key_file = tmp_path / "vault.key"
    key_file.write_text(KEY_A + "\n")
    key_file.chmod(0o600)
    before = make_vault(KEY_A)
    for number, value in enumerate(VALUES):
        before.put("resp", f"r{number}", {"restorable": {f"[X_{number}]": value}}, ttl_s=3600)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"name: r\nvault: {{backend: redis, redis_url: '{redis_server.url}', redis_prefix: '{PREFIX}', "
                      f"key_env: NO_SUCH_VAULT_KEY_ENV, key_file: '{key_file}'}}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PRIVACY_PROXY_REDIS_URL", "NO_SUCH_VAULT_KEY_ENV")}
    done = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "vault", "rotate", "--policy", str(policy)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"re-encrypted {len(VALUES)} records" in done.stdout
    keyring = load_keyring(None, key_file, create=False)
    assert len(keyring.keys) == 2 and key_id(bytes.fromhex(KEY_A)) in keyring.keys
    after = RedisVault(redis_server.client(), keyring, None, prefix=PREFIX, where=redis_server.url)
    assert set(after.key_ids_in_use()) == {keyring.current_id} != {key_id(bytes.fromhex(KEY_A))}
    assert after.get("resp", "r1") == {"restorable": {"[X_1]": VALUES[1]}}
    assert 0 < raw.ttl(f"{PREFIX}resp:r1".encode()) <= 3600  # expiry kept
    with pytest.raises(VaultError):
        make_vault(KEY_A).get("resp", "r1")  # the old key alone no longer opens it
    after.close()


def test_rotation_old_keys_decrypt_newest_encrypts(make_vault, raw: redis.Redis, redis_server: RedisServer) -> None:
    old = make_vault(KEY_A, default_ttl_s=600)
    for i in range(5):
        old.put("s", f"k{i}", {"v": f"value {i}"})
    rotated = make_vault(KEY_A, KEY_B, default_ttl_s=600)
    rotated.put("s", "new", {"v": "new"})
    assert rotated.key_ids_in_use() == {key_id(bytes.fromhex(KEY_A)): 5, key_id(bytes.fromhex(KEY_B)): 1}
    assert rotated.get("s", "k3") == {"v": "value 3"}
    before = raw.get(f"{PREFIX}s:k0")
    assert rotated.reencrypt() == 5
    assert rotated.reencrypt() == 0
    assert raw.get(f"{PREFIX}s:k0") != before
    assert rotated.key_ids_in_use() == {key_id(bytes.fromhex(KEY_B)): 6}
    assert all(0 < raw.pttl(name) <= 600_000 for name in names(raw))  # expiry kept
    only_new = make_vault(KEY_B)
    assert [only_new.get("s", f"k{i}") for i in range(5)] == [{"v": f"value {i}"} for i in range(5)]
    # A record under a key the ring lacks stops rotation before anything is written.
    make_vault(KEY_A, KEY_B, "c3" * 32).put("s", "c3", {"v": 1})
    with pytest.raises(VaultError, match="nothing was re-encrypted"):
        make_vault(KEY_A, KEY_B).reencrypt()


# --- failing closed --------------------------------------------------------------------------------------


def test_redis_down_fails_closed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    vault = RedisVault(server.client(), ring(KEY_A), 60, prefix=PREFIX, where=server.url)
    vault.put("s", "k", {"v": VALUES[0]})
    server.stop()
    for call in (lambda: vault.get("s", "k"), lambda: vault.put("s", "k2", {"v": 1}), lambda: vault.delete("s", "k"),
                 vault.purge_expired):
        started = time.monotonic()
        with pytest.raises(VaultError, match="unreachable") as caught:
            call()
        assert time.monotonic() - started < 12
        assert VALUES[0] not in str(caught.value)
    vault.close()


def test_open_vault_from_policy_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer(tmp_path / "redis", password="s3cret-redis-pass")
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("PRIVACY_PROXY_VAULT_KEY", raising=False)
        monkeypatch.delenv("PRIVACY_PROXY_REDIS_URL", raising=False)
        policy = f"name: r\nvault: {{backend: redis, redis_url: '{server.url}', redis_timeout: 1}}\n"
        settings = parse_policy(policy).vault
        with pytest.raises(VaultError, match="no vault key"):
            open_vault(settings)  # never a per-replica key file
        assert not (tmp_path / "vault").exists()
        monkeypatch.setenv("PRIVACY_PROXY_VAULT_KEY", KEY_A)
        with pytest.raises(VaultError, match="authentication failed") as caught:
            open_vault(settings)  # the policy's URL has no password
        monkeypatch.setenv("PRIVACY_PROXY_REDIS_URL", f"redis://:wrong-pass@127.0.0.1:{server.port}/0")
        with pytest.raises(VaultError, match="authentication failed") as caught:
            open_vault(settings)
        assert "wrong-pass" not in str(caught.value)
        monkeypatch.setenv("PRIVACY_PROXY_REDIS_URL", server.secret_url)  # the env URL wins over the policy's
        vault = open_vault(settings)
        assert isinstance(vault, RedisVault) and vault.default_ttl_s == 7 * 86400
        vault.put("resp", "r1", {"restorable": {"[PERSON_1]": "Jane Doe"}})
        assert server.client().exists("privacy-proxy:vault:resp:r1") == 1
        assert "s3cret" not in repr(vault.where) and "Jane" not in repr(vault.keyring)
        vault.close()
        monkeypatch.setenv("PRIVACY_PROXY_REDIS_URL", "")
        no_url = parse_policy("name: r\nvault: {backend: redis}\n").vault
        with pytest.raises(VaultError, match=r"set \$PRIVACY_PROXY_REDIS_URL or vault.redis_url"):
            open_vault(no_url)
        monkeypatch.setenv("PRIVACY_PROXY_REDIS_URL", "http://:pw@example.com/")
        with pytest.raises(VaultError, match="not a redis://") as caught:
            open_vault(no_url)
        assert "pw" not in str(caught.value)
    finally:
        server.stop()
    monkeypatch.setenv("PRIVACY_PROXY_REDIS_URL", server.secret_url)  # stopped: nothing listens there
    started = time.monotonic()
    with pytest.raises(VaultError, match="unreachable") as caught:
        open_redis_vault(settings)
    assert "s3cret" not in str(caught.value) and time.monotonic() - started < 5


def test_proxy_state_refuses_to_start_without_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import free_port

    from privacy_proxy.state import Overrides, ProxyState

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIVACY_PROXY_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("PRIVACY_PROXY_VAULT_KEY", KEY_A)
    monkeypatch.delenv("PRIVACY_PROXY_REDIS_URL", raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(TEST_POLICY + f"vault: {{backend: redis, redis_url: 'redis://127.0.0.1:{free_port()}/0'}}\n")
    state = ProxyState(policy, Overrides(audit_log=str(tmp_path / "audit.jsonl")))
    with pytest.raises(ConfigError, match="vault: redis vault .* unreachable"):
        state.open()
    state.audit.close()


@pytest.mark.parametrize(
    ("vault", "message"),
    [
        ("{backend: redis, redis_url: 'redis://:pw@redis:6379/0'}", "password does not belong in the policy"),
        ("{backend: redis, redis_url: 'http://redis:6379'}", "redis://, rediss:// or unix://"),
        ("{backend: redis, redis_prefix: ''}", "redis_prefix"),
        ("{backend: redis, redis_timeout: 0}", "redis_timeout"),
        ("{backend: mongo}", "backend"),
    ],
)
def test_policy_checks_redis_settings(vault: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_policy(f"name: r\nvault: {vault}\n")
    assert "pw@" not in str(caught.value)
    ok = parse_policy("name: r\nvault: {backend: redis, redis_url: 'rediss://user@redis:6380/2'}\n").vault
    defaults = ("PRIVACY_PROXY_REDIS_URL", "privacy-proxy:vault:", 2.0)
    assert (ok.redis_url_env, ok.redis_prefix, ok.redis_timeout) == defaults


# --- two replicas ------------------------------------------------------------------------------------------


NAME, EMAIL, OTHER = "John Smith", "john.smith@example.com", "Jane Doe"


@pytest.fixture
def replicas(redis_server: RedisServer, raw: redis.Redis, upstream_server: FakeUpstream,
             tmp_path: Path) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    """Two proxy processes that share nothing but the Redis vault (own working dirs, audit logs, ports)."""
    upstream_server.reset()
    policy = TEST_POLICY + "vault: {backend: redis, redis_prefix: 'pp-replicas:', ttl: 600}\n"
    env = {"PRIVACY_PROXY_VAULT_KEY": KEY_A, "PRIVACY_PROXY_REDIS_URL": redis_server.url}
    a = start_proxy(policy, tmp_path / "a", upstream_server.base_url, extra_env=env)
    try:
        b = start_proxy(policy, tmp_path / "b", upstream_server.base_url, extra_env=env)
    except BaseException:
        finish_proxy(a)
        raise
    yield a, b
    finish_proxy(a)
    finish_proxy(b)
    upstream_server.reset()


def sdk(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="client-key", max_retries=0)


def test_conversation_started_on_one_replica_continues_on_the_other(
    replicas: tuple[ProxyProcess, ProxyProcess], upstream_server: FakeUpstream, raw: redis.Redis
) -> None:
    a, b = replicas
    first = sdk(a).responses.create(model="m", input=f"I am {NAME}, reach me at {EMAIL}.", store=True)
    assert first.output_text == f"I am {NAME}, reach me at {EMAIL}."
    assert upstream_server.requests[-1].json["input"] == "I am [PERSON_1], reach me at [EMAIL_ADDRESS_1]."
    # Turn 2 on replica B sends only its new input; the model quotes turn 1's tokens, which only A saw.
    upstream_server.push(Behaviour(answer="You are [PERSON_1] ([email_address_1]); I will cc [PERSON_2]."))
    second = sdk(b).responses.create(model="m", input=f"Who am I? Also cc {OTHER}, and {NAME}.",
                                     previous_response_id=first.id)
    assert second.output_text == f"You are {NAME} ({EMAIL}); I will cc {OTHER}."
    sent = upstream_server.requests[-1].json
    assert sent["previous_response_id"] == first.id
    assert sent["input"] == "Who am I? Also cc [PERSON_2], and [PERSON_1]."  # same value, same token
    # Turn 3 back on A, continuing B's turn: tokens of both earlier turns restore.
    upstream_server.push(Behaviour(answer="[PERSON_2] and [PERSON_1]"))
    third = sdk(a).responses.create(model="m", input="Names?", previous_response_id=second.id)
    assert third.output_text == f"{OTHER} and {NAME}"
    for recorded in upstream_server.requests:
        for value in (NAME, EMAIL, OTHER):
            assert value.casefold() not in recorded.body.decode().casefold()
    stored = sorted(raw.scan_iter(match="pp-replicas:*"))
    assert stored == sorted(f"pp-replicas:responses:{r.id}".encode() for r in (first, second, third))
    data = b"".join(raw.get(name) for name in stored)
    for value in (NAME, EMAIL, OTHER, "[PERSON_1]"):
        assert value.encode() not in data
    assert all(0 < raw.pttl(name) <= 600_000 for name in stored)
    assert a.audit_path != b.audit_path and a.audit_path.exists() and b.audit_path.exists()


def test_replica_fails_closed_when_redis_is_down(
    tmp_path: Path, upstream_server: FakeUpstream
) -> None:
    server = RedisServer(tmp_path / "redis")
    upstream_server.reset()
    policy = TEST_POLICY + "vault: {backend: redis, redis_timeout: 1}\n"
    env = {"PRIVACY_PROXY_VAULT_KEY": KEY_A, "PRIVACY_PROXY_REDIS_URL": server.url}
    proxy = start_proxy(policy, tmp_path / "p", upstream_server.base_url, extra_env=env)
    try:
        first = sdk(proxy).responses.create(model="m", input=f"I am {NAME}")
        server.stop()
        count = len(upstream_server.requests)
        with pytest.raises(openai.APIStatusError) as caught:
            sdk(proxy).responses.create(model="m", input="Who am I?", previous_response_id=first.id)
        assert caught.value.status_code == 503
        assert caught.value.response.json()["error"]["code"] == "vault_unavailable"
        assert len(upstream_server.requests) == count  # nothing was forwarded without its mapping
        # A new stored conversation cannot keep its mapping: the answer is withheld, not served unrestorable.
        with pytest.raises(openai.APIStatusError) as caught:
            sdk(proxy).responses.create(model="m", input=f"I am {NAME}", store=True)
        assert caught.value.status_code == 503
        assert NAME not in caught.value.response.text
        assert proxy.health().status_code == 200  # the proxy itself is up; only stateful calls fail
    finally:
        finish_proxy(proxy)
        server.stop()
        upstream_server.reset()
