"""The audit log's on-disk format: canonical hashing, HMAC, line checks, and the files of a rotated log.

Shared by the writer (audit.py) and the verifier (audit_verify.py); no I/O beyond reading files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical_hash(body: Mapping[str, Any]) -> str:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    # compare_digest rejects non-ASCII str, which a tampered line may contain; compare bytes instead.
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def checkpoint_path(path: Path) -> Path:
    """Where the checkpoints of the log at ``path`` go: ``audit.jsonl`` → ``audit.checkpoints.jsonl``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.checkpoints{path.suffix}")


def rotated_name(path: Path, day: str, first_seq: int) -> Path:
    return path.with_name(f"{path.stem}.{day}.{first_seq:010d}{path.suffix}")


_ROTATED = re.compile(r"\d{4}-\d{2}-\d{2}\.(\d{10,})")


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log at ``path``, oldest first (by the first seq in their name)."""
    path = Path(path)
    prefix, suffix = path.stem + ".", path.suffix
    found: list[tuple[int, Path]] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
            match = _ROTATED.fullmatch(name[len(prefix) : len(name) - len(suffix)])
            if match:
                found.append((int(match.group(1)), entry))
    return [p for _, p in sorted(found)]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def last_line(path: Path) -> bytes | None:
    """The last line of ``path`` (with its newline, if any); None for an empty file."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        if pos == 0:
            return None
        buf = b""
        # Read backwards so reopening a large log costs O(last line), not O(file).
        while pos > 0 and buf.rfind(b"\n", 0, max(len(buf) - 1, 0)) == -1:
            step = min(8192, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    return buf[buf.rfind(b"\n", 0, len(buf) - 1) + 1 :]


def first_line(path: Path) -> bytes | None:
    with open(path, "rb") as f:
        line = f.readline()
    return line or None


def _parse(raw: bytes) -> tuple[str, Any]:
    """(reason, None) for a torn or non-JSON line, else ("", the parsed value)."""
    if not raw.endswith(b"\n"):
        return "incomplete last line (torn write)", None
    try:
        return "", json.loads(raw)
    except (ValueError, RecursionError):
        return "not JSON", None


def _check_digest(body: dict[str, Any], key: bytes | None, what: str) -> tuple[str, str]:
    """(reason, "") when ``hash`` is not the canonical hash of the rest or ``hmac`` is wrong, else ("", hash)."""
    try:
        digest = canonical_hash({k: v for k, v in body.items() if k not in ("hash", "hmac")})
    except ValueError:  # e.g. a lone surrogate escape: never written by AuditLog
        digest = ""
    if digest != body["hash"]:
        return f"hash mismatch ({what} edited)", ""
    if key is not None and not same(body["hmac"], mac(key, body["hash"])):
        return "bad hmac", ""
    return "", digest


def check_line(raw: bytes, seq: int | None, prev: str | None, key: bytes | None) -> tuple[str, str]:
    """(reason, "") for a bad line, else ("", the record's hash); seq/prev None skip the chain checks."""
    reason, rec = _parse(raw)
    if reason:
        return reason, ""
    if not isinstance(rec, dict):
        return "not JSON", ""
    if not (
        type(rec.get("seq")) is int
        and all(isinstance(rec.get(k), str) for k in ("prev_hash", "hash", "hmac"))
        and _HEX64.fullmatch(rec["hash"])
    ):
        return "missing or malformed chain fields", ""
    reason, digest = _check_digest(rec, key, "record")
    if reason:
        return reason, ""
    if prev is not None and rec["prev_hash"] != prev:
        return "broken chain (record inserted, deleted or reordered)", ""
    if seq is not None and rec["seq"] != seq:
        return "seq out of order", ""
    return "", digest


def check_checkpoint_line(raw: bytes, key: bytes | None) -> tuple[str, str]:
    """(reason, "") for a bad checkpoint line, else ("", its hash)."""
    reason, checkpoint = _parse(raw)
    if reason:
        return reason, ""
    if not (
        isinstance(checkpoint, dict)
        and type(checkpoint.get("seq")) is int
        and all(isinstance(checkpoint.get(k), str) for k in ("head", "prev", "hash", "hmac"))
    ):
        return "missing or malformed checkpoint fields", ""
    return _check_digest(checkpoint, key, "checkpoint")
