"""The audit log beyond one file: rotation with a continuous chain, signed checkpoints, sealed originals,
`audit verify` against every kind of tampering, `audit report`, and audit.required."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import AUDIT_KEY, TEST_POLICY, finish_proxy, start_proxy
from privacy_proxy.audit import AuditError, AuditLog, checkpoint_path, rotated_files, verify_log
from privacy_proxy.audit_crypto import Signer, load_public_keys, write_keypair

KEY = bytes(range(32))


def fields(i: int, **extra: object) -> dict:
    return {"request_id": f"req-{i}", "route": "/v1/chat/completions", "decision": "forward", "strategy": "forward",
            "policy": {"name": "default", "sha256": "ab" * 32}, "entities": {"EMAIL_ADDRESS": 1}, "pad": "x" * 200,
            **extra}


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    key = Ed25519PrivateKey.generate()
    write_keypair(tmp_path / "keys" / "signing.key", key)
    return Signer(key)


@pytest.fixture
def pubkeys(tmp_path: Path, signer: Signer) -> dict:
    return load_public_keys([tmp_path / "keys" / "signing.pub"])


def build(path: Path, n: int, signer: Signer | None = None, **options: object) -> list[Path]:
    """Write n records with rotation every ~3 records; returns the files oldest first (active last)."""
    options.setdefault("rotate_bytes", 1500)
    with AuditLog(path, KEY, signer=signer, checkpoint_every=4 if signer else 0, **options) as log:
        for i in range(n):
            log.append(fields(i))
    return [*rotated_files(path), path]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "privacy_proxy.cli", *args], capture_output=True, text=True,
                          env={"PATH": "", **(env or {})}, cwd=cwd, timeout=60)


# --- rotation ------------------------------------------------------------------------------------------


def test_rotation_by_size_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = build(path, 10)
    assert len(files) >= 4
    assert all(re.fullmatch(r"audit\.\d{4}-\d{2}-\d{2}\.\d{10}\.jsonl", f.name) for f in files[:-1])
    records = [json.loads(line) for f in files for line in lines(f)]
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:]))
    for previous, current in zip(files, files[1:]):
        first = json.loads(lines(current)[0])
        assert first["event"] == "file_start" and first["previous_file"] == previous.name
    assert sum(1 for r in records if "event" not in r) == 10
    result = verify_log(path, KEY)
    assert result.ok and result.records == len(records) and f"{len(files)} files" in result.reason


def test_rotation_by_day(tmp_path: Path) -> None:
    moments = iter([datetime(2030, 1, 1, 23, 59, tzinfo=timezone.utc) + timedelta(minutes=i) for i in range(10)])
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, KEY, rotate_daily=True, clock=lambda: next(moments)) as log:
        log.append(fields(0))  # 23:59 on Jan 1
        log.append(fields(1))  # 00:00 on Jan 2: the day changed
        log.append(fields(2))
    assert [f.name for f in rotated_files(path)] == ["audit.2030-01-01.0000000000.jsonl"]
    active = [json.loads(line) for line in lines(path)]
    assert active[0]["event"] == "file_start" and [r.get("request_id") for r in active[1:]] == ["req-1", "req-2"]
    assert verify_log(path, KEY).ok


def test_restart_and_a_crash_between_rename_and_new_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    build(path, 7)
    with AuditLog(path, KEY, rotate_bytes=1000) as log:
        log.append(fields(7))
    assert verify_log(path, KEY).ok
    # Simulate a crash right after the active file was renamed away: no active file, rotated ones remain.
    newest = rotated_files(path)[-1]
    os.rename(path, newest.with_name(newest.name.replace(newest.name.split(".")[2], "9999999999")))
    with AuditLog(path, KEY) as log:
        record = log.append(fields(8))
    first = json.loads(lines(path)[0])
    assert first["event"] == "file_start" and record["prev_hash"] == first["hash"]
    assert verify_log(path, KEY).ok


# --- tampering across files ----------------------------------------------------------------------------


def _tamper_edit(files: list[Path]) -> tuple[Path, int]:
    target = files[1]
    content = lines(target)
    content[1] = content[1].replace(b'"decision":"forward"', b'"decision":"block"')
    target.write_bytes(b"".join(content))
    return target, 2


def _tamper_insert(files: list[Path]) -> tuple[Path, int]:
    target = files[1]
    content = lines(target)
    content.insert(1, content[1])
    target.write_bytes(b"".join(content))
    return target, 2 + 1


def _tamper_delete(files: list[Path]) -> tuple[Path, int]:
    target = files[1]
    content = lines(target)
    del content[1]
    target.write_bytes(b"".join(content))
    return target, 2


def _tamper_reorder(files: list[Path]) -> tuple[Path, int]:
    target = files[1]
    content = lines(target)
    content[1], content[2] = content[2], content[1]
    target.write_bytes(b"".join(content))
    return target, 2


def _tamper_truncate_rotated(files: list[Path]) -> tuple[Path, int]:
    target = files[1]
    content = lines(target)
    target.write_bytes(b"".join(content[:-1]))
    return target, len(content)


def _tamper_truncate_active(files: list[Path]) -> tuple[Path, int]:
    target = files[-1]
    content = lines(target)
    target.write_bytes(b"".join(content[:-1]))
    return target, len(content)


def _tamper_missing_middle(files: list[Path]) -> tuple[Path, int]:
    files[1].unlink()
    return files[2], 1


def _tamper_missing_oldest(files: list[Path]) -> tuple[Path, int]:
    files[0].unlink()
    return files[1], 1


def _tamper_swap_files(files: list[Path]) -> tuple[Path, int]:
    a, b = files[1], files[2]
    tmp = a.with_name("tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    return a, 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_edit, "edited"),
        (_tamper_insert, "broken chain"),
        (_tamper_delete, "broken chain"),
        (_tamper_reorder, "broken chain"),
        (_tamper_truncate_rotated, "truncated"),
        (_tamper_truncate_active, "truncated"),
        (_tamper_missing_middle, "missing file"),
        (_tamper_missing_oldest, "missing file"),
        (_tamper_swap_files, ""),
    ],
)
def test_verify_names_the_first_bad_record(tmp_path: Path, signer: Signer, tamper, reason: str) -> None:
    path = tmp_path / "audit.jsonl"
    files = build(path, 16, signer)
    assert len(files) >= 4 and all(len(lines(f)) >= 3 for f in files[:-1]) and len(lines(files[-1])) >= 2
    assert verify_log(path, KEY).ok
    bad_file, bad_line = tamper(files)
    result = verify_log(path, KEY)
    assert not result.ok and reason in result.reason
    if tamper is not _tamper_swap_files:
        assert (result.file, result.first_bad_line) == (bad_file, bad_line), result
    verify = cli("audit", "verify", str(path), env={"PRIVACY_PROXY_AUDIT_KEY": KEY.hex()})
    assert verify.returncode == 1 and str(result.file) in verify.stderr and reason in verify.stderr


def test_writer_refuses_to_extend_a_log_truncated_below_its_checkpoint(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "audit.jsonl"
    build(path, 5, signer, rotate_bytes=0)
    content = lines(path)
    path.write_bytes(b"".join(content[:-2]))
    with pytest.raises(AuditError, match="checkpoint"):
        AuditLog(path, KEY, signer=signer, checkpoint_every=4)


# --- checkpoints and the public key --------------------------------------------------------------------


def test_checkpoints_are_periodic_signed_and_cover_the_close(tmp_path: Path, signer: Signer, pubkeys: dict) -> None:
    path = tmp_path / "audit.jsonl"
    build(path, 10, signer)
    checkpoints = [json.loads(line) for line in lines(checkpoint_path(path))]
    total = sum(len(lines(f)) for f in [*rotated_files(path), path])
    assert checkpoints[-1]["seq"] == total - 1  # the close signed the head
    assert len(checkpoints) >= 3 and all(c["signer"] == signer.key_id for c in checkpoints)
    assert all(b["prev"] == a["hash"] for a, b in zip(checkpoints, checkpoints[1:]))
    result = verify_log(path, None, public_keys=pubkeys)
    assert result.ok and result.unsigned_tail == 0 and result.checkpoints == len(checkpoints)


def test_public_key_alone_catches_a_rewritten_chain(tmp_path: Path, signer: Signer, pubkeys: dict) -> None:
    """An attacker without the HMAC key rewrites a record and recomputes every hash after it: the chain is
    self-consistent again, but no longer matches the signed checkpoints."""
    import hashlib

    path = tmp_path / "audit.jsonl"
    build(path, 6, signer, rotate_bytes=0)
    records = [json.loads(line) for line in lines(path)]
    records[1]["decision"] = "block"
    prev = records[0]["hash"]
    for record in records[1:]:
        record["prev_hash"] = prev
        body = {k: v for k, v in record.items() if k not in ("hash", "hmac")}
        record["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        prev = record["hash"]
    path.write_bytes(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records))
    assert not verify_log(path, None).ok  # the checkpoints' heads no longer match, even unsigned
    result = verify_log(path, None, public_keys=pubkeys)
    assert not result.ok and result.first_bad_line == 4 and "checkpoint" in result.reason  # first checkpointed seq (3)
    cli_result = cli("audit", "verify", str(path), "--public-key", str(tmp_path / "keys" / "signing.pub"), cwd=tmp_path)
    assert cli_result.returncode == 1 and "checkpoint" in cli_result.stderr


def test_forged_or_foreign_checkpoints_fail(tmp_path: Path, signer: Signer, pubkeys: dict) -> None:
    path = tmp_path / "audit.jsonl"
    build(path, 6, signer, rotate_bytes=0)
    other = Ed25519PrivateKey.generate()
    write_keypair(tmp_path / "other.key", other)
    result = verify_log(path, None, public_keys=load_public_keys([tmp_path / "other.pub"]))
    assert not result.ok and "unknown key" in result.reason and result.file == checkpoint_path(path)
    cp_lines = lines(checkpoint_path(path))
    forged = json.loads(cp_lines[0])
    forged["seq"] = 0  # claim a different head position, keep the signature
    checkpoint_path(path).write_bytes(json.dumps(forged).encode() + b"\n" + b"".join(cp_lines[1:]))
    result = verify_log(path, KEY, public_keys=pubkeys)
    assert not result.ok and result.first_bad_line == 1


def test_verify_with_public_key_and_no_hmac_key_via_cli(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "audit.jsonl"
    build(path, 9, signer)
    with AuditLog(path, KEY) as log:  # two records after the last checkpoint, no signer now
        log.append(fields(9))
        log.append(fields(10))
    ok = cli("audit", "verify", str(path), "--public-key", str(tmp_path / "keys" / "signing.pub"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "2 records after the last signed checkpoint" in ok.stdout and "HMACs not checked" in ok.stdout
    none = cli("audit", "verify", str(path), cwd=tmp_path)
    assert none.returncode == 2 and "--public-key" in none.stderr


# --- sealed originals ----------------------------------------------------------------------------------


def test_sealed_originals_e2e(fake, tmp_path: Path) -> None:
    keys = tmp_path / "auditor"
    made = cli("audit", "keygen", "seal", str(keys))
    assert made.returncode == 0, made.stderr
    policy = TEST_POLICY + f"audit: {{seal_to: {keys / 'auditor-seal.pub'}}}\n"
    proxy = start_proxy(policy, tmp_path / "run", fake.base_url)
    try:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Mail jane@example.com, John Smith"}])
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "no values here"}])
    finally:
        finish_proxy(proxy)
    text = proxy.audit_path.read_text()
    assert "jane@example.com" not in text and "John Smith" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert "sealed" in records[0] and "sealed" not in records[1]
    assert not list((tmp_path / "run").rglob("auditor-seal.key"))  # the proxy never had the private key
    opened = cli("audit", "unseal", str(proxy.audit_path), "--private-key", str(keys / "auditor-seal.key"))
    assert opened.returncode == 0, opened.stderr
    out = json.loads(opened.stdout.splitlines()[0])
    assert out["request_id"] == records[0]["request_id"]
    assert out["originals"]["restorable"] == {"[EMAIL_ADDRESS_1]": "jane@example.com", "[PERSON_1]": "John Smith"}
    wrong = tmp_path / "wrong"
    cli("audit", "keygen", "seal", str(wrong))
    refused = cli("audit", "unseal", str(proxy.audit_path), "--private-key", str(wrong / "auditor-seal.key"))
    assert refused.returncode == 1 and "jane" not in refused.stdout + refused.stderr
    assert cli("audit", "verify", str(proxy.audit_path), env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY}).returncode == 0


# --- the proxy writes all of it; audit.required ---------------------------------------------------------


def test_proxy_rotates_and_checkpoints_and_verifies_with_its_public_key(fake, tmp_path: Path) -> None:
    policy = TEST_POLICY + "audit: {rotate_bytes: 1500, checkpoint_every: 3}\n"
    proxy = start_proxy(policy, tmp_path, fake.base_url)
    try:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        for i in range(8):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": f"note {i} for John Smith"}])
    finally:
        finish_proxy(proxy)
    audit_dir = tmp_path / "audit"
    assert len(rotated_files(proxy.audit_path)) >= 2
    assert (audit_dir / "audit-signing.pub").exists() and (audit_dir / "audit.checkpoints.jsonl").exists()
    ok = cli("audit", "verify", str(proxy.audit_path), "--public-key", str(audit_dir / "audit-signing.pub"), cwd=tmp_path)
    assert ok.returncode == 0 and "records after" not in ok.stdout, ok.stdout + ok.stderr
    content = lines(proxy.audit_path)
    proxy.audit_path.write_bytes(b"".join(content[:-1]))  # cut the last record of the stopped proxy
    cut = cli("audit", "verify", str(proxy.audit_path), env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY})
    assert cut.returncode == 1 and "truncated" in cut.stderr


def test_audit_required_false_serves_and_says_so_loudly(inprocess_factory, monkeypatch, caplog) -> None:
    proxy = inprocess_factory(TEST_POLICY + "audit: {required: false}\n")

    def broken(fields: dict) -> dict:
        raise AuditError("disk full")

    monkeypatch.setattr(proxy.state.audit, "append", broken)
    response = httpx.post(f"{proxy.base_url}/chat/completions",
                          json={"model": "m", "messages": [{"role": "user", "content": "hello"}]}, timeout=30)
    assert response.status_code == 200
    assert "AUDIT-UNWRITTEN" in caplog.text


# --- report --------------------------------------------------------------------------------------------


def _report_log(path: Path) -> None:
    start = datetime(2030, 3, 1, 10, 0, tzinfo=timezone.utc)
    rows = [
        ("forward", "forward", {"PERSON": 2, "EMAIL_ADDRESS": 1}, None, None, ("default", "aa" * 32)),
        ("forward", "forward", {"PERSON": 1}, None, None, ("default", "aa" * 32)),
        ("block", "block", {"CREDIT_CARD": 1}, "entity_blocked", None, ("default", "aa" * 32)),
        ("block", "block", {"<img src=x>": 1}, "leak_guard", None, ("strict", "bb" * 32)),
        ("error", "error", {}, None, "upstream_timeout", ("strict", "bb" * 32)),
        ("reject", "reject", {}, "invalid_request", None, ("strict", "bb" * 32)),
    ]
    with AuditLog(path, KEY, rotate_bytes=700) as log:
        for i, (decision, strategy, entities, reason, fault, (name, sha)) in enumerate(rows):
            log.append({"time": (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"), "request_id": f"r{i}",
                        "route": "/v1/chat/completions", "decision": decision, "strategy": strategy, "reason": reason,
                        "entities": entities, "fault": fault, "policy": {"name": name, "sha256": sha},
                        "latency_ms": 10.0 * (i + 1), "upstream_status": 200 if decision == "forward" else None})


def test_report_json_text_and_html(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _report_log(path)
    assert len(rotated_files(path)) >= 1
    data = json.loads(cli("audit", "report", str(path), "--format", "json").stdout)
    assert data["requests"] == 6 and data["decisions"] == {"forward": 2, "block": 2, "error": 1, "reject": 1}
    assert data["entities"]["PERSON"] == 3 and data["entities"]["CREDIT_CARD"] == 1
    assert data["blocks"] == {"total": 2, "by_reason": {"entity_blocked": 1, "leak_guard": 1},
                              "by_entity": {"CREDIT_CARD": 1, "<img src=x>": 1}}
    assert data["faults"] == {"upstream_timeout": 1}
    assert [(p["name"], p["requests"]) for p in data["policies"]] == [("default", 3), ("strict", 3)]
    assert data["timeline"]["bucket"] == "hour" and len(data["timeline"]["series"]) == 6
    assert data["latency_ms"]["max"] == 60.0

    text = cli("audit", "report", str(path)).stdout
    assert "decisions:" in text and "policy versions:" in text and "strict bbbbbbbbbbbb  3 requests" in text

    out = tmp_path / "report.html"
    assert cli("audit", "report", str(path), "--format", "html", "--out", str(out)).returncode == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 5
    assert "<script" not in page and "<img src=x>" not in page and "&lt;img src=x&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # self-contained: nothing fetched
    assert cli("audit", "report", str(path), "--format", "pdf").returncode == 2
