"""The vault: the `Vault` contract for both backends, and the encrypted SQLite backend's guarantees
(no plaintext on disk, wrong keys and moved rows fail closed, expiry, key rotation, thread safety)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TEST_POLICY
from vault_checks import VALUES, check_put_get_delete_overwrite, hammer, ring

from privacy_proxy.errors import ConfigError
from privacy_proxy.vault import MemoryVault, Vault, VaultError, open_vault
from privacy_proxy.vault_sqlite import (
    SQLiteVault,
    add_key_to_file,
    key_id,
    load_keyring,
)

KEY_A, KEY_B, KEY_C = "a1" * 32, "b2" * 32, "c3" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def make_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Vault]]:
    made: list[Vault] = []

    def make(default_ttl_s: float | None = None) -> Vault:
        vault: Vault = (MemoryVault(default_ttl_s=default_ttl_s) if request.param == "memory"
                        else SQLiteVault(tmp_path / "v.sqlite3", ring(KEY_A), default_ttl_s=default_ttl_s))
        made.append(vault)
        return vault

    yield make
    for vault in made:
        vault.close()


# --- the contract, both backends -------------------------------------------------------------------------


def test_put_get_delete_overwrite(make_vault: Callable[..., Vault]) -> None:
    vault = make_vault()
    check_put_get_delete_overwrite(vault)


def test_ttl_and_purge(make_vault: Callable[..., Vault]) -> None:
    vault = make_vault(default_ttl_s=3600)
    vault.put("s", "short", {"v": 1}, ttl_s=0.05)
    vault.put("s", "long", {"v": 2})
    import time

    time.sleep(0.1)
    assert vault.get("s", "short") is None
    vault.put("s", "short2", {"v": 3}, ttl_s=0.05)
    time.sleep(0.1)
    assert vault.purge_expired() == 1
    assert vault.get("s", "long") == {"v": 2}


# --- SQLite: what is on disk ---------------------------------------------------------------------------


def test_database_files_hold_no_plaintext_value(tmp_path: Path) -> None:
    path = tmp_path / "vault" / "v.sqlite3"
    vault = SQLiteVault(path, ring(KEY_A))
    for i, value in enumerate(VALUES):
        vault.put("conv", f"c{i}", {"restorable": {f"[X_{i}]": value}, "protected": [value]})
    vault.put("conv", "c-deleted", {"protected": ["deleted.value@example.org"]})
    vault.delete("conv", "c-deleted")

    def raw_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith("v.sqlite3"))

    while_open = raw_bytes()  # the WAL holds the recent pages while the connection is open
    vault.close()
    for data in (while_open, raw_bytes()):
        assert len(data) > 4096
        for value in [*VALUES, "deleted.value@example.org", "[X_0]", "restorable"]:
            for form in (value.encode(), value.encode("utf-16-le"), value.encode("unicode_escape")):
                assert form not in data, value
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = SQLiteVault(path, ring(KEY_A))
    assert reopened.get("conv", "c1") == {"restorable": {"[X_1]": VALUES[1]}, "protected": [VALUES[1]]}
    reopened.close()


def test_wrong_key_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    with_a = SQLiteVault(path, ring(KEY_A))
    with_a.put("s", "k", {"v": VALUES[0]})
    with_a.close()
    with pytest.raises(VaultError, match="none of its records") as caught:
        SQLiteVault(path, ring(KEY_B))
    assert KEY_B not in str(caught.value) and KEY_A not in str(caught.value)
    # A ring that knows some rows but not these: reading them raises, never returns garbage.
    both = SQLiteVault(path, ring(KEY_A, KEY_B))
    both.put("s", "new", {"v": 1})
    both.close()
    only_b = SQLiteVault(path, ring(KEY_B))
    assert only_b.get("s", "new") == {"v": 1}
    with pytest.raises(VaultError, match="not in the key ring"):
        only_b.get("s", "k")
    only_b.close()


def test_forged_key_id_and_flipped_bytes_fail_authentication(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    vault = SQLiteVault(path, ring(KEY_A, KEY_B))
    vault.put("s", "k", {"v": VALUES[0]})
    vault.put("s", "j", {"v": VALUES[1]})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE records SET key_id = ? WHERE key = 'k'", (key_id(bytes.fromhex(KEY_A)),))
        ciphertext = db.execute("SELECT ciphertext FROM records WHERE key = 'j'").fetchone()[0]
        flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
        db.execute("UPDATE records SET ciphertext = ? WHERE key = 'j'", (flipped,))
    for key in ("k", "j"):
        with pytest.raises(VaultError, match="authentication"):
            vault.get("s", key)
    vault.close()


def test_rows_cannot_be_swapped_moved_or_given_more_time(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    vault = SQLiteVault(path, ring(KEY_A), default_ttl_s=60)
    vault.put("conv", "alice", {"v": "alice's mapping"})
    vault.put("conv", "bob", {"v": "bob's mapping"})
    vault.put("conv", "carol", {"v": "carol's mapping"})
    vault.put("conv", "dave", {"v": "dave's mapping"})
    with sqlite3.connect(path) as db:
        rows = {k: n + c for k, n, c in db.execute("SELECT key, nonce, ciphertext FROM records")}
        a = db.execute("SELECT nonce, ciphertext FROM records WHERE key = 'alice'").fetchone()
        b = db.execute("SELECT nonce, ciphertext FROM records WHERE key = 'bob'").fetchone()
        db.execute("UPDATE records SET nonce = ?, ciphertext = ? WHERE key = 'alice'", b)
        db.execute("UPDATE records SET nonce = ?, ciphertext = ? WHERE key = 'bob'", a)
        db.execute("UPDATE records SET scope = 'other' WHERE key = 'carol'")
        db.execute("UPDATE records SET expires_ms = expires_ms + 86400000 WHERE key = 'dave'")
    assert len(set(rows.values())) == 4
    for scope, key in (("conv", "alice"), ("conv", "bob"), ("other", "carol"), ("conv", "dave")):
        with pytest.raises(VaultError, match="altered or moved"):
            vault.get(scope, key)
    vault.close()


def test_expiry_with_a_clock_and_purge(tmp_path: Path) -> None:
    clock = Clock()
    vault = SQLiteVault(tmp_path / "v.sqlite3", ring(KEY_A), default_ttl_s=100, clock=clock)
    vault.put("s", "default", {"v": 1})
    vault.put("s", "short", {"v": 2}, ttl_s=10)
    clock.now += 11
    assert vault.get("s", "short") is None and vault.get("s", "default") == {"v": 1}
    vault.put("s", "short", {"v": 3}, ttl_s=10)
    clock.now += 95
    assert vault.purge_expired() == 2
    assert vault.get("s", "default") is None and vault.get("s", "short") is None
    vault.close()


def test_rotation_old_keys_decrypt_newest_encrypts(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    old = SQLiteVault(path, ring(KEY_A))
    for i in range(5):
        old.put("s", f"k{i}", {"v": f"value {i}"})
    old.close()
    rotated = SQLiteVault(path, ring(KEY_A, KEY_B))
    rotated.put("s", "new", {"v": "new"})
    assert rotated.key_ids_in_use() == {key_id(bytes.fromhex(KEY_A)): 5, key_id(bytes.fromhex(KEY_B)): 1}
    assert rotated.get("s", "k3") == {"v": "value 3"}
    assert rotated.reencrypt() == 5
    assert rotated.key_ids_in_use() == {key_id(bytes.fromhex(KEY_B)): 6}
    rotated.close()
    only_new = SQLiteVault(path, ring(KEY_B))
    assert [only_new.get("s", f"k{i}") for i in range(5)] == [{"v": f"value {i}"} for i in range(5)]
    only_new.close()


def test_concurrent_puts_and_gets(tmp_path: Path) -> None:
    vault = SQLiteVault(tmp_path / "v.sqlite3", ring(KEY_A))
    hammer(vault, threads=8, per_thread=100)
    assert sum(vault.key_ids_in_use().values()) == 800
    vault.close()


def test_bad_records_and_closed_vault(tmp_path: Path) -> None:
    vault = SQLiteVault(tmp_path / "v.sqlite3", ring(KEY_A))
    with pytest.raises(VaultError, match="JSON"):
        vault.put("s", "k", {"blob": b"bytes"})
    with pytest.raises(VaultError, match="JSON"):
        vault.put("s", "k", {"v": float("nan")})
    assert vault.get("s", "k") is None
    vault.close()
    with pytest.raises(VaultError, match="closed"):
        vault.get("s", "k")


# --- keys ----------------------------------------------------------------------------------------------


def test_key_file_created_0600_env_wins_and_bad_keys_are_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys" / "vault.key"
    first = load_keyring("PP_TEST_VAULT_KEY_UNSET", key_file)
    assert len(first.keys) == 1 and load_keyring(None, key_file).keys == first.keys
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key_file.chmod(0o644)
        with pytest.raises(VaultError, match="chmod 600"):
            load_keyring(None, key_file)
        key_file.chmod(0o600)
    monkeypatch.setenv("PP_TEST_VAULT_KEY", f"{KEY_A}, {KEY_B}")
    from_env = load_keyring("PP_TEST_VAULT_KEY", key_file)
    assert list(from_env.keys.values()) == [bytes.fromhex(KEY_A), bytes.fromhex(KEY_B)]
    assert from_env.current_id == key_id(bytes.fromhex(KEY_B))
    monkeypatch.setenv("PP_TEST_VAULT_KEY", "correct horse battery staple")
    with pytest.raises(VaultError) as caught:
        load_keyring("PP_TEST_VAULT_KEY", key_file)
    assert "horse" not in str(caught.value) and "64-hex" in str(caught.value)
    new_id = add_key_to_file(key_file)
    assert load_keyring(None, key_file).current_id == new_id and len(load_keyring(None, key_file).keys) == 2


def test_proxy_state_opens_the_vault_the_policy_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privacy_proxy.state import Overrides, ProxyState

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIVACY_PROXY_AUDIT_KEY", "ab" * 32)
    monkeypatch.delenv("PRIVACY_PROXY_VAULT_KEY", raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(TEST_POLICY + "vault: {path: data/v.sqlite3, key_file: data/v.key, ttl: 60}\n")
    state = ProxyState(policy, Overrides(audit_log=str(tmp_path / "audit.jsonl")))
    state.open()
    assert isinstance(state.vault, SQLiteVault) and state.vault.default_ttl_s == 60
    state.vault.put("resp", "r1", {"restorable": {"[PERSON_1]": "Jane Doe"}})
    state.audit.close()
    state.vault.close()
    assert (tmp_path / "data" / "v.sqlite3").exists() and (tmp_path / "data" / "v.key").exists()
    assert b"Jane Doe" not in (tmp_path / "data" / "v.sqlite3").read_bytes()

    monkeypatch.setenv("PRIVACY_PROXY_VAULT_KEY", KEY_C)  # not the key the records were written with
    state = ProxyState(policy, Overrides(audit_log=str(tmp_path / "audit2.jsonl")))
    with pytest.raises(ConfigError, match="vault"):
        state.open()
    state.audit.close()

    policy.write_text(TEST_POLICY + "vault: {backend: memory}\n")
    assert isinstance(open_vault(ProxyState(policy).policy.vault), MemoryVault)


def test_vault_rotate_command(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: v\nvault: {path: v.sqlite3, key_file: v.key}\n")
    env = {k: v for k, v in os.environ.items() if k != "PRIVACY_PROXY_VAULT_KEY"}
    keyring = load_keyring(None, tmp_path / "v.key")
    vault = SQLiteVault(tmp_path / "v.sqlite3", keyring)
    for i in range(3):
        vault.put("s", str(i), {"v": VALUES[i]})
    vault.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "vault", *args, "--policy", str(policy)],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)

    result = cli("rotate")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 3 records" in result.stdout
    rotated = load_keyring(None, tmp_path / "v.key")
    assert len(rotated.keys) == 2 and rotated.current_id != keyring.current_id
    for secret in rotated.keys.values():
        assert secret.hex() not in result.stdout + result.stderr
    vault = SQLiteVault(tmp_path / "v.sqlite3", rotated)
    assert vault.key_ids_in_use() == {rotated.current_id: 3}
    vault.close()
    result = cli("rotate", "--drop-old")
    assert result.returncode == 0, result.stderr
    final = load_keyring(None, tmp_path / "v.key")
    assert len(final.keys) == 1
    vault = SQLiteVault(tmp_path / "v.sqlite3", final)
    assert [vault.get("s", str(i)) for i in range(3)] == [{"v": VALUES[i]} for i in range(3)]
    vault.close()
    assert cli("purge").returncode == 0
