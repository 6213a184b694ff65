"""Tamper-evident audit log: append-only JSON lines, hash-chained and HMAC'd, plus a verifier.

Each line is one record: the caller's fields plus ``seq``, ``time``, ``prev_hash``, ``hash`` (sha256 of the
canonical JSON of the record without ``hash``/``hmac``) and ``hmac`` (HMAC-SHA256 of the ``hash`` hex string).
Editing a line breaks its hash; recomputing the hash breaks the HMAC; inserting, deleting or reordering lines
breaks the chain. Truncating the tail is only caught by comparing against an anchored ``AuditLog.head``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; one writer per file is then on the caller
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditError", "AuditLog", "VerifyResult", "load_or_create_key", "verify_log", "GENESIS_HASH"]

GENESIS_HASH = "0" * 64
_CHAIN_FIELDS = ("seq", "prev_hash", "hash", "hmac")
_HEX_KEY = re.compile(r"(?:[0-9a-fA-F]{2}){32,}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIN_FILE_KEY_BYTES = 16


class AuditError(Exception):
    """Any failure to open or write the audit log; the proxy fails the request closed."""


def _canonical_hash(body: Mapping[str, Any]) -> str:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    # compare_digest rejects non-ASCII str, which a tampered line may contain; compare bytes instead.
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_or_create_key(env_var: str | None, key_file: Path) -> bytes:
    """Audit key from ``env_var`` (hex if 64+ hex chars, else UTF-8), else ``key_file`` (hex), else a new 32-byte key file (0600)."""
    value = os.environ.get(env_var, "") if env_var else ""
    if value:
        stripped = value.strip()
        return bytes.fromhex(stripped) if _HEX_KEY.fullmatch(stripped) else value.encode("utf-8")
    key_file = Path(key_file)
    try:
        return _read_key_file(key_file)
    except FileNotFoundError:
        pass
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two processes starting together must not each write (and use) a different key.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(key_file)
    except OSError as e:
        raise AuditError(f"cannot create audit key file {key_file}: {e.strerror}") from None
    key = secrets.token_bytes(32)
    try:
        os.write(fd, (key.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    except OSError as e:
        raise AuditError(f"cannot write audit key file {key_file}: {e.strerror}") from None
    finally:
        os.close(fd)
    return key


def _read_key_file(key_file: Path) -> bytes:
    """Read a hex key file; FileNotFoundError passes through so the caller can create it."""
    try:
        mode = key_file.stat().st_mode
        if os.name == "posix" and mode & 0o077:
            raise AuditError(
                f"audit key file {key_file} is accessible by group or others (mode {oct(mode & 0o777)}); "
                f"fix with: chmod 600 {key_file}"
            )
        text = key_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"cannot read audit key file {key_file}: {type(e).__name__}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    # A truncated or hand-edited file must not silently become a trivially guessable key.
    if len(key) < _MIN_FILE_KEY_BYTES:
        raise AuditError(f"audit key file {key_file} is not a hex key of at least {_MIN_FILE_KEY_BYTES} bytes")
    return key


def _last_line(path: Path) -> bytes | None:
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


class AuditLog:
    """Append-only, hash-chained audit log; one writer per file (enforced with flock on POSIX)."""

    def __init__(self, path: Path, key: bytes, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._key = key
        self._fsync = fsync
        self._lock = threading.Lock()
        self._broken = False
        self._seq = 0
        self._head = GENESIS_HASH
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror}") from None
        try:
            if fcntl is not None:
                try:
                    # A second writer (another worker process) would fork the chain; refuse it up front.
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise AuditError(f"audit log {self.path} is already open for writing elsewhere") from None
            self._resume()
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def _resume(self) -> None:
        """Continue seq/prev_hash from the last record, refusing a log we cannot extend safely."""
        try:
            raw = _last_line(self.path)
        except OSError as e:
            raise AuditError(f"cannot read audit log {self.path}: {e.strerror}") from None
        if raw is None:
            return
        reason, digest = _check(raw, None, None, self._key)
        if reason:
            # Extending a torn, edited or foreign-key log would fork or bless the chain; make a person decide.
            raise AuditError(
                f"last line of audit log {self.path} is bad ({reason}); "
                "run `verify` on it, then repair it or move it aside to start a new log"
            )
        self._seq = json.loads(raw)["seq"] + 1
        self._head = digest

    @property
    def head(self) -> str:
        """Hash of the last record (64 zeros for an empty log); anchor it elsewhere to detect truncation."""
        return self._head

    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record and return it as written; thread-safe; raises AuditError on any failure."""
        if not isinstance(fields, Mapping):
            raise AuditError("audit fields must be a mapping")
        reserved = [k for k in _CHAIN_FIELDS if k in fields]
        if reserved:
            raise AuditError(f"audit fields may not set reserved keys: {', '.join(reserved)}")
        try:
            # Round-trip through JSON so the hash covers exactly what a verifier will parse back
            # (tuples, int dict keys, str subclasses all normalise), and the caller's dict is not kept.
            clean = json.loads(json.dumps(dict(fields), ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError) as e:
            raise AuditError(f"audit fields are not JSON-serialisable ({type(e).__name__})") from None
        with self._lock:
            if self._fd is None:
                raise AuditError(f"audit log {self.path} is closed")
            if self._broken:
                # A failed write may have left a partial line; appending after it would corrupt the log.
                raise AuditError(f"audit log {self.path} is unusable after a failed write; restart to check it")
            record: dict[str, Any] = {"seq": self._seq, "time": clean.pop("time") if "time" in clean else _now()}
            record.update(clean)
            record["prev_hash"] = self._head
            digest = _canonical_hash(record)
            record["hash"] = digest
            record["hmac"] = _mac(self._key, digest)
            line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
            try:
                # One write() on an O_APPEND fd; loop only for a (rare) short write, still under the lock.
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                self._broken = True
                raise AuditError(f"cannot write audit log {self.path}: {e.strerror}") from None
            self._seq += 1
            self._head = digest
            if self._fsync:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    self._broken = True
                    raise AuditError(f"cannot fsync audit log {self.path}: {e.strerror}") from None
            return record

    def close(self) -> None:
        """Close the file (releasing the writer lock); idempotent."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records that passed (all of them when ok)
    first_bad_line: int | None  # 1-based
    reason: str


def verify_log(path: Path, key: bytes | None) -> VerifyResult:
    """Check every line's hash, HMAC (when ``key`` is given), chain and seq; stop at the first bad line."""
    prev, count = GENESIS_HASH, 0
    try:
        f = open(path, "rb")
    except OSError as e:
        return VerifyResult(False, 0, None, f"cannot read log: {e.strerror}")
    with f:
        # Binary iteration splits on b"\n" only; str.splitlines would also split on U+2028 inside values.
        for lineno, raw in enumerate(f, 1):
            reason, digest = _check(raw, count, prev, key)
            if reason:
                return VerifyResult(False, count, lineno, reason)
            prev, count = digest, count + 1
    return VerifyResult(True, count, None, "ok" if key is not None else "ok (HMACs not checked: no key given)")


def _check(raw: bytes, seq: int | None, prev: str | None, key: bytes | None) -> tuple[str, str]:
    """(reason, "") for a bad line, else ("", the record's hash); seq/prev None skip the chain checks."""
    if not raw.endswith(b"\n"):
        return "incomplete last line (torn write)", ""
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):
        return "not JSON", ""
    if not isinstance(rec, dict):
        return "not JSON", ""
    if not (
        type(rec.get("seq")) is int
        and all(isinstance(rec.get(k), str) for k in ("prev_hash", "hash", "hmac"))
        and _HEX64.fullmatch(rec["hash"])
    ):
        return "missing or malformed chain fields", ""
    try:
        digest = _canonical_hash({k: v for k, v in rec.items() if k not in ("hash", "hmac")})
    except ValueError:  # e.g. a lone surrogate escape: never written by AuditLog
        digest = ""
    if digest != rec["hash"]:
        return "hash mismatch (record edited)", ""
    if key is not None and not _same(rec["hmac"], _mac(key, rec["hash"])):
        return "bad hmac", ""
    if prev is not None and rec["prev_hash"] != prev:
        return "broken chain (record inserted, deleted or reordered)", ""
    if seq is not None and rec["seq"] != seq:
        return "seq out of order", ""
    return "", digest
