"""The default vault backend: SQLite on disk, every record sealed with AES-256-GCM.

Row layout (table `records`): scope, key, key_id, nonce, ciphertext, expires_ms, created_ms.

Sealing, the key ring and key files live in vault_crypto.py (shared with the Redis backend):

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

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from privacy_proxy.vault import Record, VaultError
from privacy_proxy.vault_crypto import (
    SealedRecord,
    VaultKeyring,
    add_key_to_file,
    key_id,
    load_keyring,
    open_record,
    seal_record,
    write_key_file,
)

# The key ring and key-file helpers are re-exported: `privacy-proxy vault` and older imports use them from here.
__all__ = ["SQLiteVault", "VaultKeyring", "add_key_to_file", "key_id", "load_keyring", "write_key_file"]

logger = logging.getLogger("privacy_proxy.vault")

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
        sealed = seal_record(self.keyring, scope, key, record, expires_ms)
        return sealed.key_id, sealed.nonce, sealed.ciphertext

    def _open(self, scope: str, key: str, kid: str, nonce: bytes, ciphertext: bytes, expires_ms: int | None) -> Record:
        return open_record(self.keyring, scope, key, SealedRecord(kid, nonce, ciphertext), expires_ms)

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
