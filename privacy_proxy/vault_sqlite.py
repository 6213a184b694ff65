"""The default vault backend: SQLite on disk, every record sealed with AES-256-GCM.

Row layout (table `records`): scope, key, key_id, nonce, ciphertext, expires_ms, created_ms.

- The record (JSON) is encrypted with the key ring's newest key under a fresh 96-bit random nonce.
- The associated data binds the ciphertext to its row: ``["privacy-proxy vault v1", scope, key, expires_ms]``.
  A ciphertext copied to another (scope, key), or an expiry pushed back, fails authentication.
- ``key_id`` (a fingerprint of the key, not the key) says which key sealed the row. Old keys in the ring
  still decrypt; `reencrypt()` (``privacy-proxy vault rotate``) moves every row to the newest key.
- Any failure to authenticate raises VaultError: a wrong key never yields garbage.

Scopes and keys (response ids, conversation ids) are stored in clear for lookup; callers must not use
private values as ids. One connection guarded by a lock serves every thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy_proxy.vault import Record, VaultError

__all__ = ["SQLiteVault", "VaultKeyring", "add_key_to_file", "key_id", "load_keyring", "write_key_file"]

logger = logging.getLogger("privacy_proxy.vault")

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_AAD_LABEL = "privacy-proxy vault v1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    expires_ms INTEGER,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_ms) WHERE expires_ms IS NOT NULL;
"""


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (stored per row); reveals nothing usable about the key."""
    return hashlib.sha256(b"privacy-proxy vault key id\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class VaultKeyring:
    """AES-256 keys, oldest first; the last one encrypts, every one decrypts."""

    keys: dict[str, bytes]
    source: str

    @property
    def current_id(self) -> str:
        return next(reversed(self.keys))

    @classmethod
    def parse(cls, text: str, source: str) -> VaultKeyring:
        keys: dict[str, bytes] = {}
        items = [item.strip() for line in text.splitlines() for item in line.split("#", 1)[0].split(",")]
        for number, item in enumerate((item for item in items if item), 1):
            if not _HEX_KEY.fullmatch(item):
                # Never echo the item: it may be a key.
                raise VaultError(f"{source}: entry {number} is not a 64-hex-digit (256-bit) key")
            key = bytes.fromhex(item)
            keys.pop(key_id(key), None)
            keys[key_id(key)] = key
        if not keys:
            raise VaultError(f"{source}: no key")
        return cls(keys, source)


def load_keyring(env_var: str | None, key_file: Path, *, create: bool = True) -> VaultKeyring:
    """Keys from ``env_var`` (comma-separated hex, newest last), else ``key_file``, else a new key file (0600)."""
    value = os.environ.get(env_var, "") if env_var else ""
    if value.strip():
        return VaultKeyring.parse(value, f"${env_var}")
    key_file = Path(key_file)
    try:
        return _read_key_file(key_file)
    except FileNotFoundError:
        if not create:
            raise VaultError(f"no vault key: set ${env_var} or create {key_file}") from None
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(key_file)
    except OSError as exc:
        raise VaultError(f"cannot create vault key file {key_file}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("# privacy-proxy vault keys, oldest first; the last one encrypts\n" + secrets.token_hex(32) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return _read_key_file(key_file)


def _read_key_file(key_file: Path) -> VaultKeyring:
    try:
        mode = key_file.stat().st_mode
        if os.name == "posix" and mode & 0o077:
            raise VaultError(f"vault key file {key_file} is readable by group or others; fix with: chmod 600 {key_file}")
        text = key_file.read_text(encoding="ascii")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultError(f"cannot read vault key file {key_file}: {type(exc).__name__}") from None
    return VaultKeyring.parse(text, str(key_file))


def write_key_file(key_file: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically (0600) with ``keys``, oldest first."""
    key_file = Path(key_file)
    text = "# privacy-proxy vault keys, oldest first; the last one encrypts\n" + "".join(k.hex() + "\n" for k in keys)
    tmp = key_file.with_name(key_file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, key_file)


def add_key_to_file(key_file: Path) -> str:
    """Append a new random key (it becomes the encrypting one); returns its id."""
    key_file = Path(key_file)
    old = list(_read_key_file(key_file).keys.values()) if key_file.exists() else []
    key = secrets.token_bytes(32)
    write_key_file(key_file, [*old, key])
    return key_id(key)


def _aad(scope: str, key: str, expires_ms: int | None) -> bytes:
    return json.dumps([_AAD_LABEL, scope, key, expires_ms], ensure_ascii=False).encode("utf-8", "surrogatepass")


class SQLiteVault:
    """Encrypted records in one SQLite file; speaks the `Vault` protocol."""

    def __init__(
        self,
        path: Path,
        keyring: VaultKeyring,
        default_ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
        purge_interval_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.keyring = keyring
        self.default_ttl_s = default_ttl_s
        self._clock = clock
        self._purge_interval_s = purge_interval_s
        self._lock = threading.Lock()
        self._last_purge = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # sqlite keeps the mode for -wal/-shm
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            used = {row[0] for row in self._db.execute("SELECT DISTINCT key_id FROM records")}
        except sqlite3.Error as exc:
            raise VaultError(f"cannot open vault {self.path}: {exc}") from None
        unknown = used - set(keyring.keys)
        if used and unknown == used:
            self.close()
            raise VaultError(
                f"vault {self.path}: none of its records were written with the configured keys ({keyring.source}); "
                "restore the right key, or move the vault aside to start an empty one"
            )
        if unknown:
            logger.warning("vault %s: records under %d key id(s) not in the key ring cannot be read", self.path, len(unknown))
        self.purge_expired()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise VaultError("the vault is closed")
        return self._db

    def _seal(self, scope: str, key: str, record: Record, expires_ms: int | None) -> tuple[str, bytes, bytes]:
        try:
            plain = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            raise VaultError("the record is not JSON-serialisable") from None
        kid = self.keyring.current_id
        nonce = secrets.token_bytes(12)
        return kid, nonce, AESGCM(self.keyring.keys[kid]).encrypt(nonce, plain, _aad(scope, key, expires_ms))

    def _open(self, scope: str, key: str, kid: str, nonce: bytes, ciphertext: bytes, expires_ms: int | None) -> Record:
        secret = self.keyring.keys.get(kid)
        if secret is None:
            raise VaultError(f"vault record was written with key id {kid}, which is not in the key ring")
        try:
            plain = AESGCM(secret).decrypt(nonce, ciphertext, _aad(scope, key, expires_ms))
        except (InvalidTag, ValueError):
            raise VaultError("vault record failed authentication (wrong key, or the row was altered or moved)") from None
        record = json.loads(plain)
        if not isinstance(record, dict):
            raise VaultError("vault record is not a JSON object")
        return record

    @staticmethod
    def _check_ids(scope: str, key: str) -> None:
        if not isinstance(scope, str) or not isinstance(key, str):
            raise VaultError("vault scope and key must be strings")

    def put(self, scope: str, key: str, record: Record, ttl_s: float | None = None) -> None:
        self._check_ids(scope, key)
        ttl = ttl_s if ttl_s is not None else self.default_ttl_s
        now = self._now_ms()
        expires = now + int(ttl * 1000) if ttl is not None else None
        kid, nonce, ciphertext = self._seal(scope, key, record, expires)
        with self._lock:
            try:
                self._conn().execute(
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (scope, key, kid, nonce, ciphertext, expires, now),
                )
            except sqlite3.Error as exc:
                raise VaultError(f"cannot write vault {self.path}: {type(exc).__name__}") from None
            if now / 1000 - self._last_purge > self._purge_interval_s:
                self._purge_locked()

    def get(self, scope: str, key: str) -> Record | None:
        self._check_ids(scope, key)
        with self._lock:
            try:
                row = self._conn().execute(
                    "SELECT key_id, nonce, ciphertext, expires_ms FROM records WHERE scope = ? AND key = ?", (scope, key)
                ).fetchone()
                if row is None:
                    return None
                kid, nonce, ciphertext, expires = row
                if expires is not None and expires <= self._now_ms():
                    self._conn().execute("DELETE FROM records WHERE scope = ? AND key = ?", (scope, key))
                    return None
            except sqlite3.Error as exc:
                raise VaultError(f"cannot read vault {self.path}: {type(exc).__name__}") from None
        return self._open(scope, key, kid, nonce, ciphertext, expires)

    def delete(self, scope: str, key: str) -> None:
        self._check_ids(scope, key)
        with self._lock:
            try:
                self._conn().execute("DELETE FROM records WHERE scope = ? AND key = ?", (scope, key))
            except sqlite3.Error as exc:
                raise VaultError(f"cannot write vault {self.path}: {type(exc).__name__}") from None

    def purge_expired(self) -> int:
        with self._lock:
            return self._purge_locked()

    def _purge_locked(self) -> int:
        now = self._now_ms()
        self._last_purge = now / 1000
        try:
            cursor = self._conn().execute("DELETE FROM records WHERE expires_ms IS NOT NULL AND expires_ms <= ?", (now,))
        except sqlite3.Error as exc:
            raise VaultError(f"cannot purge vault {self.path}: {type(exc).__name__}") from None
        return cursor.rowcount

    def key_ids_in_use(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn().execute("SELECT key_id, COUNT(*) FROM records GROUP BY key_id"))

    def reencrypt(self) -> int:
        """Re-seal every live record under the newest key (one transaction); returns how many moved."""
        current = self.keyring.current_id
        moved = 0
        with self._lock:
            self._purge_locked()
            db = self._conn()
            rows = db.execute(
                "SELECT scope, key, key_id, nonce, ciphertext, expires_ms FROM records WHERE key_id != ?", (current,)
            ).fetchall()
            db.execute("BEGIN IMMEDIATE")
            try:
                for scope, key, kid, nonce, ciphertext, expires in rows:
                    record = self._open(scope, key, kid, nonce, ciphertext, expires)
                    new_kid, new_nonce, new_ct = self._seal(scope, key, record, expires)
                    db.execute(
                        "UPDATE records SET key_id = ?, nonce = ?, ciphertext = ? WHERE scope = ? AND key = ?",
                        (new_kid, new_nonce, new_ct, scope, key),
                    )
                    moved += 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return moved

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
