"""Tests for the tamper-evident audit log."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from privacy_proxy.audit import AuditError, AuditLog, GENESIS_HASH, load_or_create_key, verify_log

KEY = bytes(range(32))
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions / flock")


def _fields(i: int) -> dict:
    return {
        "request_id": f"req-{i}",
        "route": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "policy": {"name": "default", "sha256": "ab" * 32},
        "decision": "allow",
        "entities": {"EMAIL": i, "PERSON": 1},
        "bytes_out": 100 + i,
        "upstream_status": 200,
        "latency_ms": 12.5,
    }


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "audit.jsonl"
    with AuditLog(path, KEY) as log:
        for i in range(5):
            log.append(_fields(i))
    return path


def _copy(src: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _rehash(rec: dict) -> dict:
    """What an attacker without the key can do: fix the hash, keep the old hmac."""
    body = {k: v for k, v in rec.items() if k not in ("hash", "hmac")}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    rec["hash"] = hashlib.sha256(canon).hexdigest()
    return rec


def _dump(rec: dict) -> bytes:
    return (json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


# --- writing and the record format -------------------------------------------------------------------


def test_written_log_verifies(log_path: Path) -> None:
    res = verify_log(log_path, KEY)
    assert res.ok and res.records == 5 and res.first_bad_line is None and res.reason == "ok"
    recs = [json.loads(line) for line in _lines(log_path)]
    assert [r["seq"] for r in recs] == list(range(5))
    assert recs[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(recs, recs[1:]))
    first = recs[0]
    assert list(first)[:2] == ["seq", "time"] and list(first)[-3:] == ["prev_hash", "hash", "hmac"]
    assert first["time"].endswith("Z") and len(first["time"]) == len("2024-01-01T00:00:00.000Z")
    assert first["hmac"] == hmac.new(KEY, first["hash"].encode(), hashlib.sha256).hexdigest()
    assert b" " not in _lines(log_path)[0].split(b'"route"')[0]  # compact separators


def test_append_returns_record_and_keeps_caller_time(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl", KEY) as log:
        rec = log.append({"time": "2020-01-01T00:00:00.000Z", "decision": "block"})
        assert rec["time"] == "2020-01-01T00:00:00.000Z" and log.head == rec["hash"]
    assert json.loads((tmp_path / "a.jsonl").read_bytes()) == rec


def test_without_key_checks_chain_only(log_path: Path) -> None:
    res = verify_log(log_path, None)
    assert res.ok and res.records == 5 and "not checked" in res.reason


def test_empty_log_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    AuditLog(path, KEY).close()
    assert path.exists()
    assert verify_log(path, KEY) == verify_log(path, KEY)
    res = verify_log(path, KEY)
    assert res.ok and res.records == 0
    assert AuditLog(path, KEY).head == GENESIS_HASH


def test_unicode_line_separators_in_values(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    with AuditLog(path, KEY) as log:
        log.append({"note": "a\u2028b\u0085c\x1cd é 漢"})
        log.append({"note": "x"})
    assert verify_log(path, KEY).ok


def test_non_json_and_reserved_fields_are_refused(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "r.jsonl", KEY) as log:
        with pytest.raises(AuditError, match="reserved"):
            log.append({"seq": 7})
        with pytest.raises(AuditError, match="JSON"):
            log.append({"blob": b"secret-bytes"})
        with pytest.raises(AuditError, match="JSON") as exc:
            log.append({"v": float("nan")})
        assert "nan" not in str(exc.value).lower()
        with pytest.raises(AuditError, match="JSON") as exc:
            log.append({"v": "secret\ud800"})
        assert "secret" not in str(exc.value)
        log.append({"ok": True})  # refusals did not consume a seq
    res = verify_log(tmp_path / "r.jsonl", KEY)
    assert res.ok and res.records == 1


def test_append_after_close_raises(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "c.jsonl", KEY)
    log.close()
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append({})


# --- tampering ---------------------------------------------------------------------------------------


def test_edit_field_detected_as_edited(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "edit.jsonl")
    lines = _lines(path)
    lines[1] = lines[1].replace(b'"decision":"allow"', b'"decision":"block"')
    _write(path, lines)
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 2 and res.records == 1 and "edited" in res.reason
    assert not verify_log(path, None).ok


def test_edit_with_recomputed_hash_caught_by_hmac(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "rehash.jsonl")
    lines = _lines(path)
    rec = json.loads(lines[1])
    rec["entities"]["EMAIL"] = 0
    lines[1] = _dump(_rehash(rec))
    _write(path, lines)
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 2 and res.reason == "bad hmac"


def test_inserted_forged_line(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "insert.jsonl")
    lines = _lines(path)
    prev = json.loads(lines[1])
    forged = _rehash({"seq": 2, "time": prev["time"], "decision": "allow", "prev_hash": prev["hash"], "hmac": "0" * 64})
    _write(path, lines[:2] + [_dump(forged)] + lines[2:])
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 3 and res.reason == "bad hmac"
    # Without the key the forgery itself passes, but the next original line no longer chains.
    res = verify_log(path, None)
    assert not res.ok and res.first_bad_line == 4 and "broken chain" in res.reason


def test_replayed_genuine_line_breaks_chain(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "replay.jsonl")
    lines = _lines(path)
    _write(path, lines[:3] + [lines[0]] + lines[3:])
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 4 and "broken chain" in res.reason


def test_deleted_middle_line(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "delete.jsonl")
    lines = _lines(path)
    del lines[2]
    _write(path, lines)
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 3 and "broken chain" in res.reason


def test_deleted_first_line(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "delete0.jsonl")
    _write(path, _lines(path)[1:])
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 1 and "broken chain" in res.reason


def test_swapped_lines(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "swap.jsonl")
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    _write(path, lines)
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 2 and "broken chain" in res.reason


def test_wrong_key(log_path: Path) -> None:
    res = verify_log(log_path, b"another key")
    assert not res.ok and res.first_bad_line == 1 and res.reason == "bad hmac"
    with pytest.raises(AuditError, match="bad hmac"):
        AuditLog(log_path, b"another key")


def test_garbage_and_torn_lines(log_path: Path, tmp_path: Path) -> None:
    path = _copy(log_path, tmp_path, "garbage.jsonl")
    lines = _lines(path)
    _write(path, lines[:2] + [b"{not json\n"] + lines[2:])
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 3 and res.reason == "not JSON"

    path = _copy(log_path, tmp_path, "torn.jsonl")
    with open(path, "ab") as f:
        f.write(b'{"seq":5,"ti')
    res = verify_log(path, KEY)
    assert not res.ok and res.first_bad_line == 6 and res.records == 5 and "torn" in res.reason
    with pytest.raises(AuditError, match="torn") as exc:
        AuditLog(path, KEY)
    assert str(path) in str(exc.value)


def test_missing_file() -> None:
    res = verify_log(Path("/nonexistent/dir/audit.jsonl"), KEY)
    assert not res.ok and res.records == 0


# --- restarts, concurrency, speed --------------------------------------------------------------------


def test_restart_continues_chain(log_path: Path) -> None:
    old_head = json.loads(_lines(log_path)[-1])["hash"]
    log = AuditLog(log_path, KEY)
    assert log.head == old_head
    rec = log.append(_fields(5))
    log.close()
    assert rec["seq"] == 5 and rec["prev_hash"] == old_head
    res = verify_log(log_path, KEY)
    assert res.ok and res.records == 6


def test_restart_refuses_edited_last_line(log_path: Path) -> None:
    lines = _lines(log_path)
    rec = json.loads(lines[-1])
    rec["decision"] = "block"
    _write(log_path, lines[:-1] + [_dump(_rehash(rec))])
    with pytest.raises(AuditError, match="bad hmac") as exc:
        AuditLog(log_path, KEY)
    assert str(log_path) in str(exc.value)


def test_restart_after_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    with AuditLog(path, KEY) as log:
        for i in range(3):
            log.append({"pad": "x" * (20000 + i)})
    with AuditLog(path, KEY) as log:
        assert log.append({})["seq"] == 3
    assert verify_log(path, KEY).records == 4


@posix_only
def test_second_writer_refused(log_path: Path) -> None:
    with AuditLog(log_path, KEY):
        with pytest.raises(AuditError, match="already open"):
            AuditLog(log_path, KEY)
    AuditLog(log_path, KEY).close()  # released on close


def test_concurrent_appends(tmp_path: Path) -> None:
    path = tmp_path / "conc.jsonl"
    log = AuditLog(path, KEY)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(200):
                log.append({"thread": t, "i": i})
        except BaseException as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    assert not errors
    res = verify_log(path, KEY)
    assert res.ok and res.records == 1600
    recs = [json.loads(line) for line in _lines(path)]
    assert sorted((r["thread"], r["i"]) for r in recs) == [(t, i) for t in range(8) for i in range(200)]


# --- keys --------------------------------------------------------------------------------------------


@posix_only
def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "sub" / "audit.key"
    key = load_or_create_key(None, key_file)
    assert len(key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert bytes.fromhex(key_file.read_text().strip()) == key
    assert load_or_create_key(None, key_file) == key
    assert load_or_create_key("PRIVACY_PROXY_TEST_UNSET_AUDIT_KEY", key_file) == key


@posix_only
def test_group_readable_key_file_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "audit.key"
    load_or_create_key(None, key_file)
    key_file.chmod(0o640)
    with pytest.raises(AuditError) as exc:
        load_or_create_key(None, key_file)
    assert str(key_file) in str(exc.value) and "chmod 600" in str(exc.value)


def test_bad_key_file_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_text("not hex\n")
    key_file.chmod(0o600)
    with pytest.raises(AuditError, match="hex"):
        load_or_create_key(None, key_file)


def test_env_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "audit.key"
    monkeypatch.setenv("PP_AUDIT_KEY", "ab" * 32)
    assert load_or_create_key("PP_AUDIT_KEY", key_file) == bytes.fromhex("ab" * 32)
    assert not key_file.exists()  # the env key is used as is; no file is made
    load_or_create_key(None, key_file)
    assert load_or_create_key("PP_AUDIT_KEY", key_file) == bytes.fromhex("ab" * 32)
    monkeypatch.setenv("PP_AUDIT_KEY", "a passphrase, not hex")
    assert load_or_create_key("PP_AUDIT_KEY", key_file) == b"a passphrase, not hex"
    monkeypatch.setenv("PP_AUDIT_KEY", "")
    assert load_or_create_key("PP_AUDIT_KEY", key_file) == bytes.fromhex(key_file.read_text().strip())
