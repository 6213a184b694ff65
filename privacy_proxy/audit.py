"""Tamper-evident audit log: append-only JSON lines, hash-chained and HMAC'd, plus a verifier.

Each line is one record: the caller's fields plus ``seq``, ``time``, ``prev_hash``, ``hash`` (sha256 of the
canonical JSON of the record without ``hash``/``hmac``) and ``hmac`` (HMAC-SHA256 of the ``hash`` hex string).
Editing a line breaks its hash; recomputing the hash breaks the HMAC; inserting, deleting or reordering lines
breaks the chain.

Rotation (by size and/or UTC day) renames the active file to ``<stem>.<YYYY-MM-DD>.<first seq>.<suffix>`` and
starts a new one whose first record is ``{"event": "file_start", "previous_file", "previous_head",
"previous_sha256"}``: the chain and ``seq`` continue, so a deleted, truncated or swapped file breaks it.

Checkpoints go to ``<stem>.checkpoints<suffix>`` beside the log: ``{seq, head, time, prev, signer, signature,
hash, hmac}``: the chain head signed with Ed25519 (when a signer is given) and chained to the previous
checkpoint; written every N records / T seconds, at rotation and on close. The log must reach every
checkpoint, so truncating it below the last one is caught; a verifier with the public key alone can
check every record up to the last signed checkpoint (audit_verify.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_proxy.audit_format import (
    GENESIS_HASH,
    canonical_hash,
    check_checkpoint_line,
    check_line,
    checkpoint_path,
    file_sha256,
    first_line,
    last_line,
    mac,
    rotated_files,
    rotated_name,
)

if TYPE_CHECKING:
    from privacy_proxy.audit_crypto import Signer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; one writer per file is then on the caller
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "GENESIS_HASH",
    "AuditError",
    "AuditLog",
    "VerifyResult",
    "checkpoint_path",
    "load_or_create_key",
    "rotated_files",
    "verify_log",
]

_CHAIN_FIELDS = ("seq", "prev_hash", "hash", "hmac")
_HEX_KEY = re.compile(r"(?:[0-9a-fA-F]{2}){32,}")
_MIN_FILE_KEY_BYTES = 16


class AuditError(Exception):
    """Any failure to open or write the audit log; the proxy fails the request closed."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


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


class AuditLog:
    """Append-only, hash-chained audit log; one writer per log (a flock on ``<log>.lock`` on POSIX).

    ``rotate_bytes`` / ``rotate_daily`` start a new file (the chain continues); ``signer``,
    ``checkpoint_every`` (records) and ``checkpoint_interval`` (seconds) turn on checkpoints.
    """

    def __init__(
        self,
        path: Path,
        key: bytes,
        *,
        fsync: bool = False,
        rotate_bytes: int = 0,
        rotate_daily: bool = False,
        signer: Signer | None = None,
        checkpoint_every: int = 0,
        checkpoint_interval: float = 0.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path)
        self.checkpoint_path = checkpoint_path(self.path)
        self._key = key
        self._fsync = fsync
        self._rotate_bytes = rotate_bytes
        self._rotate_daily = rotate_daily
        self._signer = signer
        self._cp_every = checkpoint_every
        self._cp_interval = checkpoint_interval
        self._checkpoints = signer is not None or checkpoint_every > 0 or checkpoint_interval > 0
        self._clock = clock or _utc_now
        self._lock = threading.Lock()
        self._broken = False
        self._seq = 0
        self._head = GENESIS_HASH
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._cp_fd: int | None = None
        self._file_first_seq = 0
        self._file_day = ""
        self._file_size = 0
        self._cp_seq = -1
        self._cp_hash = GENESIS_HASH
        self._cp_mono = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror}") from None
        try:
            if fcntl is not None:
                try:
                    # A second writer (another worker process) would fork the chain; refuse it up front.
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise AuditError(f"audit log {self.path} is already open for writing elsewhere") from None
            self._resume()
        except BaseException:
            self._close_fds()
            raise

    def _resume(self) -> None:
        """Continue seq/prev_hash from the last record (of the newest rotated file if the active one is
        empty), refusing a log we cannot extend safely."""
        try:
            raw = last_line(self.path) if self.path.exists() else None
            continue_from = None
            if raw is not None:
                self._resume_from(self.path, raw)
                first = json.loads(first_line(self.path) or b"{}")
                self._file_first_seq = first.get("seq", 0) if isinstance(first.get("seq"), int) else 0
                self._file_day = str(first.get("time", ""))[:10]
                self._file_size = self.path.stat().st_size
            else:
                older = rotated_files(self.path)
                if older:
                    continue_from = older[-1]
                    last = last_line(continue_from)
                    if last is None:
                        raise AuditError(f"rotated audit file {continue_from} is empty; run `verify` on the log")
                    self._resume_from(continue_from, last)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror}") from None
        if self._checkpoints:
            self._open_checkpoints()
        if continue_from is not None:  # a crash between renaming the old file and starting the new one
            self._write_locked(self._file_start_fields(continue_from), self._clock())

    def _resume_from(self, path: Path, raw: bytes) -> None:
        reason, digest = check_line(raw, None, None, self._key)
        if reason:
            # Extending a torn, edited or foreign-key log would fork or bless the chain; make a person decide.
            raise AuditError(
                f"last line of audit log {path} is bad ({reason}); "
                "run `verify` on it, then repair it or move it aside to start a new log"
            )
        self._seq = json.loads(raw)["seq"] + 1
        self._head = digest

    def _open_checkpoints(self) -> None:
        try:
            self._cp_fd = os.open(self.checkpoint_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            raw = last_line(self.checkpoint_path)
        except OSError as e:
            raise AuditError(f"cannot open audit checkpoints {self.checkpoint_path}: {e.strerror}") from None
        if raw is None:
            return
        reason, digest = check_checkpoint_line(raw, self._key)
        if reason:
            raise AuditError(f"last line of {self.checkpoint_path} is bad ({reason}); run `verify` on the log")
        last = json.loads(raw)
        if last["seq"] > self._seq - 1:
            raise AuditError(
                f"audit log {self.path} ends at seq {self._seq - 1} but a checkpoint covers seq {last['seq']}: "
                "records were removed; run `verify` on the log"
            )
        self._cp_seq, self._cp_hash = last["seq"], digest

    @property
    def head(self) -> str:
        """Hash of the last record (64 zeros for an empty log); anchor it elsewhere to detect truncation."""
        return self._head

    def snapshot(self) -> tuple[int, str]:
        """(seq of the last record, its hash), consistent with each other; (-1, zeros) when empty."""
        with self._lock:
            return self._seq - 1, self._head

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
            now = self._clock()
            if self._file_size and (
                (self._rotate_bytes and self._file_size >= self._rotate_bytes)
                or (self._rotate_daily and _iso(now)[:10] != self._file_day)
            ):
                self._rotate_locked(now)
            record = self._write_locked(clean, now)
            if self._checkpoints and (
                (self._cp_every and self._seq - 1 - self._cp_seq >= self._cp_every)
                or (self._cp_interval and time.monotonic() - self._cp_mono >= self._cp_interval)
            ):
                self._checkpoint_locked(now)
            return record

    def _write_locked(self, clean: dict[str, Any], now: datetime) -> dict[str, Any]:
        assert self._fd is not None
        record: dict[str, Any] = {"seq": self._seq, "time": clean.pop("time") if "time" in clean else _iso(now)}
        record.update(clean)
        record["prev_hash"] = self._head
        digest = canonical_hash(record)
        record["hash"] = digest
        record["hmac"] = mac(self._key, digest)
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        self._write_all(self._fd, line, self.path)
        if self._file_size == 0:
            self._file_first_seq, self._file_day = self._seq, _iso(now)[:10]
        self._file_size += len(line)
        self._seq += 1
        self._head = digest
        return record

    def _write_all(self, fd: int, data: bytes, path: Path) -> None:
        try:
            # One write() on an O_APPEND fd; loop only for a (rare) short write, still under the lock.
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self._fsync:
                os.fsync(fd)
        except OSError as e:
            self._broken = True
            raise AuditError(f"cannot write audit log {path}: {e.strerror}") from None

    def _file_start_fields(self, previous: Path) -> dict[str, Any]:
        try:
            digest = file_sha256(previous)
        except OSError as e:
            self._broken = True
            raise AuditError(f"cannot read rotated audit file {previous}: {e.strerror}") from None
        return {"event": "file_start", "previous_file": previous.name, "previous_head": self._head,
                "previous_sha256": digest}

    def _rotate_locked(self, now: datetime) -> None:
        """Close the active file under its rotated name and start a new one linked to it."""
        assert self._fd is not None
        if self._checkpoints:
            self._checkpoint_locked(now)
        rotated = rotated_name(self.path, self._file_day or _iso(now)[:10], self._file_first_seq)
        try:
            if rotated.exists():
                raise FileExistsError(17, f"{rotated.name} exists")
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.rename(self.path, rotated)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            self._broken = True
            raise AuditError(f"cannot rotate audit log {self.path}: {e.strerror}") from None
        self._file_size = 0
        self._write_locked(self._file_start_fields(rotated), now)

    def _checkpoint_locked(self, now: datetime) -> dict[str, Any] | None:
        if self._cp_fd is None or self._seq == 0 or self._cp_seq == self._seq - 1:
            return None
        checkpoint: dict[str, Any] = {"seq": self._seq - 1, "head": self._head, "time": _iso(now), "prev": self._cp_hash}
        if self._signer is not None:
            from privacy_proxy.audit_crypto import checkpoint_message

            checkpoint["signer"] = self._signer.key_id
            checkpoint["signature"] = self._signer.sign(checkpoint_message(checkpoint))
        digest = canonical_hash(checkpoint)
        checkpoint["hash"] = digest
        checkpoint["hmac"] = mac(self._key, digest)
        line = (json.dumps(checkpoint, separators=(",", ":")) + "\n").encode("ascii")
        self._write_all(self._cp_fd, line, self.checkpoint_path)
        self._cp_seq, self._cp_hash, self._cp_mono = self._seq - 1, digest, time.monotonic()
        return checkpoint

    def checkpoint(self) -> dict[str, Any] | None:
        """Write a checkpoint now if records were added since the last one; returns it (or None)."""
        with self._lock:
            if self._fd is None or self._broken or not self._checkpoints:
                return None
            return self._checkpoint_locked(self._clock())

    def _close_fds(self) -> None:
        for name in ("_fd", "_cp_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def close(self) -> None:
        """Write a final checkpoint (when enabled), close the files and release the writer lock; idempotent."""
        with self._lock:
            if self._fd is not None and self._checkpoints and not self._broken:
                try:
                    self._checkpoint_locked(self._clock())
                except AuditError:
                    pass  # the log itself is intact; the verifier reports the uncovered tail
            self._close_fds()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records that passed (all of them when ok)
    first_bad_line: int | None  # 1-based, in `file`
    reason: str
    file: Path | None = None  # the file holding the first bad record (the log itself when not rotated)
    checkpoints: int = 0  # checkpoints that matched the log
    unsigned_tail: int | None = None  # records after the last signed checkpoint (when public keys were given)


def verify_log(
    path: Path,
    key: bytes | None,
    *,
    public_keys: Mapping[str, Any] | None = None,
    until_seq: int | None = None,
    expect_head: str | None = None,
) -> VerifyResult:
    """Check every record's hash, HMAC (when ``key`` is given), chain and seq across rotated files, and the
    checkpoints (signatures when ``public_keys`` are given); stop at the first bad record."""
    from privacy_proxy.audit_verify import verify_chain

    return verify_chain(Path(path), key, public_keys=public_keys, until_seq=until_seq, expect_head=expect_head)
