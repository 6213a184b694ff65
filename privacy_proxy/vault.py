"""Mappings that must outlive one request (stateful APIs: `previous_response_id`, conversation ids).

A vault stores small JSON records under (scope, key) with a time to live. Every backend speaks the
`Vault` protocol; the request path never knows which one it holds. `MemoryVault` keeps records in
this process only (lost on restart, not shared between replicas). `SQLiteVault` (vault_sqlite.py, the
default) keeps them on disk, each encrypted with AES-256-GCM and bound to its (scope, key). `RedisVault`
(vault_redis.py) seals them the same way (vault_crypto.py) in a Redis that proxy replicas share.
`open_vault(settings)` builds the one the policy's `vault:` section names.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from privacy_proxy.policy.model import VaultSettings

# JSON-serializable record, e.g. {"restorable": {"<PERSON_1>": "Alice"}}
Record = dict[str, Any]


class VaultError(Exception):
    """A record could not be stored or read (wrong key, tampered record, backend down). Fail closed."""


class Vault(Protocol):
    def put(self, scope: str, key: str, record: Record, ttl_s: float | None = None) -> None: ...

    def get(self, scope: str, key: str) -> Record | None:
        """The record, or None when it is absent or expired. Raises VaultError when it cannot be read."""
        ...

    def delete(self, scope: str, key: str) -> None: ...

    def purge_expired(self) -> int:
        """Remove expired records; returns how many."""
        ...

    def close(self) -> None: ...


class MemoryVault:
    """In-process vault: a dict guarded by a lock, expired records dropped on read and on purge."""

    def __init__(self, default_ttl_s: float | None = None, max_records: int = 100_000) -> None:
        self.default_ttl_s = default_ttl_s
        self.max_records = max_records
        self._records: dict[tuple[str, str], tuple[float | None, Record]] = {}
        self._lock = threading.Lock()

    def put(self, scope: str, key: str, record: Record, ttl_s: float | None = None) -> None:
        ttl = ttl_s if ttl_s is not None else self.default_ttl_s
        expires = time.time() + ttl if ttl is not None else None
        with self._lock:
            if len(self._records) >= self.max_records and (scope, key) not in self._records:
                self._purge_locked()
                if len(self._records) >= self.max_records:
                    # Oldest first: dicts keep insertion order.
                    self._records.pop(next(iter(self._records)))
            self._records[(scope, key)] = (expires, record)

    def get(self, scope: str, key: str) -> Record | None:
        with self._lock:
            entry = self._records.get((scope, key))
            if entry is None:
                return None
            expires, record = entry
            if expires is not None and expires <= time.time():
                del self._records[(scope, key)]
                return None
            return record

    def delete(self, scope: str, key: str) -> None:
        with self._lock:
            self._records.pop((scope, key), None)

    def purge_expired(self) -> int:
        with self._lock:
            return self._purge_locked()

    def _purge_locked(self) -> int:
        now = time.time()
        expired = [k for k, (expires, _) in self._records.items() if expires is not None and expires <= now]
        for k in expired:
            del self._records[k]
        return len(expired)

    def close(self) -> None:
        with self._lock:
            self._records.clear()


def open_vault(settings: VaultSettings) -> Vault:
    """The backend the policy names; raises VaultError when its key or file cannot be used."""
    if settings.backend == "memory":
        return MemoryVault(default_ttl_s=settings.ttl)
    if settings.backend == "redis":
        try:
            from privacy_proxy.vault_redis import open_redis_vault
        except ModuleNotFoundError as exc:
            if exc.name != "redis":
                raise
            raise VaultError("vault.backend redis needs the redis package: pip install 'privacy-proxy[redis]'") from None
        return open_redis_vault(settings)
    from privacy_proxy.vault_sqlite import SQLiteVault, load_keyring

    keyring = load_keyring(settings.key_env, Path(settings.key_file))
    return SQLiteVault(Path(settings.path), keyring, default_ttl_s=settings.ttl)
