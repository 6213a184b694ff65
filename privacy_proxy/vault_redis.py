"""A vault shared by proxy replicas: Redis, every record sealed exactly as the SQLite backend seals it.

`vault.backend: redis`. Replicas share nothing but this vault: a Responses conversation started on one
replica (its token mapping saved under the response id) continues on any other.

- One Redis string per record, named ``<prefix><scope>:<key>`` (``%`` and ``:`` in the scope are
  %-escaped, so names are unambiguous). Scopes and keys (response and conversation ids) are in clear, as in
  SQLite; values never are.
- The value is ``b"ppv1" | key id (16 ASCII) | expires_ms (int64, -1: none) | nonce (12) | ciphertext``:
  AES-256-GCM from vault_crypto.py under the ring's newest key, the associated data binding it to
  (scope, key, expires_ms). A value copied to another name, or an expiry pushed back, fails authentication.
- The time to live is Redis's own expiry (``SET ... PX``), so Redis drops records by itself. The expiry sealed
  into the record is checked on read too: a record whose Redis TTL was removed still ends on time.
- Fail closed: Redis down, slow (past ``vault.redis_timeout``), refusing the password, or a record that does
  not authenticate raises VaultError; the request is then refused, never served without its mapping.
- The key ring is never generated here: replicas must share it (``vault.key_env`` or ``vault.key_file``).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from privacy_proxy.vault import Record, VaultError
from privacy_proxy.vault_crypto import (
    SealedRecord,
    VaultKeyring,
    load_keyring,
    open_record,
    seal_record,
)

if TYPE_CHECKING:
    from privacy_proxy.policy.model import VaultSettings

__all__ = ["RedisVault", "open_redis_vault", "redis_url"]

logger = logging.getLogger("privacy_proxy.vault")

_MAGIC = b"ppv1"
_HEADER = struct.Struct(">4s16sq12s")  # magic, key id, expires_ms (-1: none), nonce
_NO_EXPIRY = -1
_ATTEMPTS = 5  # optimistic transactions retried when another writer touched the record meanwhile


def redis_url(settings: VaultSettings) -> str:
    """The URL in ``vault.redis_url_env`` (it may carry a password), else ``vault.redis_url``."""
    url = os.environ.get(settings.redis_url_env, "").strip() if settings.redis_url_env else ""
    url = url or (settings.redis_url or "")
    if not url:
        raise VaultError(f"vault.backend is redis: set ${settings.redis_url_env} or vault.redis_url")
    return url


def describe_url(url: str) -> str:
    """Where a URL points, for messages: scheme, host, port and database; never a user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        port = "?"
    return f"{parts.scheme}://{parts.hostname or '?'}:{port}{parts.path or ''}"


@dataclass(frozen=True)
class _Envelope:
    sealed: SealedRecord
    expires_ms: int | None


def _pack(sealed: SealedRecord, expires_ms: int | None) -> bytes:
    expires = _NO_EXPIRY if expires_ms is None else expires_ms
    return _HEADER.pack(_MAGIC, sealed.key_id.encode("ascii"), expires, sealed.nonce) + sealed.ciphertext


def _unpack(blob: bytes) -> _Envelope:
    if len(blob) <= _HEADER.size or not blob.startswith(_MAGIC):
        raise VaultError("vault record is malformed (not written by privacy-proxy, or cut short)")
    _, kid, expires, nonce = _HEADER.unpack_from(blob)
    try:
        key_id = kid.decode("ascii")
    except UnicodeDecodeError:
        raise VaultError("vault record is malformed (bad key id)") from None
    return _Envelope(SealedRecord(key_id, nonce, blob[_HEADER.size:]), None if expires == _NO_EXPIRY else expires)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisVault:
    """Encrypted records in Redis; speaks the `Vault` protocol. The client is thread safe (a connection pool)."""

    def __init__(
        self,
        client: redis.Redis,
        keyring: VaultKeyring,
        default_ttl_s: float | None = None,
        *,
        prefix: str = "privacy-proxy:vault:",
        where: str = "redis",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not prefix:
            raise VaultError("the redis key prefix must not be empty")
        self._client = client
        self.keyring = keyring
        self.default_ttl_s = default_ttl_s
        self.prefix = prefix
        self.where = where
        self._clock = clock
        self._closed = False
        try:
            with self._backend("reach"):
                self._client.ping()
            self._check_keys()
        except VaultError:
            self.close()
            raise

    # --- plumbing ---------------------------------------------------------------------------------------

    @contextmanager
    def _backend(self, action: str) -> Iterator[None]:
        """Redis and socket failures become VaultError (fail closed); the message names no value or secret."""
        if self._closed:
            raise VaultError("the vault is closed")
        try:
            yield
        except VaultError:
            raise
        except redis.exceptions.AuthenticationError:
            raise VaultError(f"redis vault {self.where}: cannot {action}: authentication failed") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise VaultError(f"redis vault {self.where}: cannot {action}: unreachable ({type(exc).__name__})") from None
        except redis.exceptions.RedisError as exc:
            raise VaultError(f"redis vault {self.where}: cannot {action}: {type(exc).__name__}") from None
        except UnicodeError:
            raise VaultError("vault scope and key must be valid Unicode") from None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _name(self, scope: str, key: str) -> str:
        if not isinstance(scope, str) or not isinstance(key, str):
            raise VaultError("vault scope and key must be strings")
        return f"{self.prefix}{scope.replace('%', '%25').replace(':', '%3A')}:{key}"

    def _split(self, name: bytes) -> tuple[str, str]:
        text = name.decode("utf-8")[len(self.prefix):]
        scope, _, key = text.partition(":")
        return scope.replace("%3A", ":").replace("%25", "%"), key

    def _names(self) -> Iterator[bytes]:
        """Every record name under the prefix (SCAN: no blocking KEYS)."""
        return self._client.scan_iter(match=_glob_escape(self.prefix) + "*", count=500)

    def _check_keys(self) -> None:
        """Refuse a key ring that opens none of the records already there (the wrong key, or another vault's)."""
        used: set[str] = set()
        with self._backend("read"):
            cursor = 0
            for _ in range(20):  # a few SCAN pages are enough to sample
                cursor, names = self._client.scan(cursor=cursor, match=_glob_escape(self.prefix) + "*", count=200)
                for blob in self._client.mget(names) if names else []:
                    if blob is not None:
                        try:
                            used.add(_unpack(blob).sealed.key_id)
                        except VaultError:
                            continue
                if used or cursor == 0:
                    break
        unknown = used - set(self.keyring.keys)
        if used and unknown == used:
            raise VaultError(
                f"redis vault {self.where} (prefix {self.prefix!r}): none of its records were written with the "
                f"configured keys ({self.keyring.source}); use the key the other replicas use, or another prefix"
            )
        if unknown:
            logger.warning("redis vault %s: records under %d key id(s) not in the key ring cannot be read",
                           self.where, len(unknown))

    # --- the Vault protocol -----------------------------------------------------------------------------

    def put(self, scope: str, key: str, record: Record, ttl_s: float | None = None) -> None:
        name = self._name(scope, key)
        ttl = ttl_s if ttl_s is not None else self.default_ttl_s
        ttl_ms = max(1, int(ttl * 1000)) if ttl is not None else None
        expires = self._now_ms() + ttl_ms if ttl_ms is not None else None
        blob = _pack(seal_record(self.keyring, scope, key, record, expires), expires)
        with self._backend("write"):
            self._client.set(name, blob, px=ttl_ms)

    def get(self, scope: str, key: str) -> Record | None:
        name = self._name(scope, key)
        with self._backend("read"):
            blob = self._client.get(name)
        if blob is None:
            return None
        envelope = _unpack(blob)
        if _expired(envelope, self._now_ms()):
            self.delete(scope, key)  # its Redis expiry was lost or lengthened; the sealed one rules
            return None
        return open_record(self.keyring, scope, key, envelope.sealed, envelope.expires_ms)

    def delete(self, scope: str, key: str) -> None:
        name = self._name(scope, key)
        with self._backend("write"):
            self._client.delete(name)

    def purge_expired(self) -> int:
        """Redis removes expired records itself; this drops those whose sealed expiry passed while Redis kept
        them (a TTL removed or lengthened, or clocks apart). Returns how many."""
        now = self._now_ms()
        purged = 0
        with self._backend("purge"):
            for name in self._names():
                try:
                    purged += self._update(name, lambda envelope: None if _expired(envelope, now) else envelope)
                except VaultError:
                    continue  # not a record of ours (malformed): its expiry is unknown, leave it
        return purged

    def key_ids_in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._backend("read"):
            for name in self._names():
                blob = self._client.get(name)
                try:
                    kid = _unpack(blob).sealed.key_id if blob is not None else None
                except VaultError:
                    continue  # malformed: written by something else
                if kid is not None:
                    counts[kid] = counts.get(kid, 0) + 1
        return counts

    def reencrypt(self) -> int:
        """Re-seal every record under the newest key, keeping its expiry; returns how many moved.

        Records under a key id the ring lacks stop it before anything is written. Each record is moved in
        its own optimistic transaction (WATCH/MULTI): one written meanwhile by a replica is re-read, not lost.
        """
        current = self.keyring.current_id
        unknown = set(self.key_ids_in_use()) - set(self.keyring.keys)
        if unknown:
            raise VaultError(f"records under {len(unknown)} key id(s) not in the key ring; nothing was re-encrypted")

        def reseal(name: bytes) -> Callable[[_Envelope], _Envelope | None]:
            scope, key = self._split(name)

            def change(envelope: _Envelope) -> _Envelope:
                if envelope.sealed.key_id == current:
                    return envelope
                expires = envelope.expires_ms
                record = open_record(self.keyring, scope, key, envelope.sealed, expires)
                return _Envelope(seal_record(self.keyring, scope, key, record, expires), expires)

            return change

        moved = 0
        with self._backend("re-encrypt"):
            for name in self._names():
                moved += self._update(name, reseal(name))
        return moved

    def _update(self, name: bytes, change: Callable[[_Envelope], _Envelope | None]) -> int:
        """Apply ``change`` to one record atomically: None deletes it, the same envelope leaves it.
        Returns 1 when the record was changed or deleted, else 0."""
        for _ in range(_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)
                    blob = pipe.get(name)
                    if blob is None:
                        return 0
                    envelope = _unpack(blob)
                    changed = change(envelope)
                    if changed is envelope:
                        return 0
                    pipe.multi()
                    if changed is None:
                        pipe.delete(name)
                    else:
                        pipe.set(name, _pack(changed.sealed, changed.expires_ms), keepttl=True)
                    pipe.execute()
                    return 1
                except redis.exceptions.WatchError:
                    continue
        raise VaultError("a vault record kept changing while it was being updated; try again")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._client.close()
            except redis.exceptions.RedisError:
                pass


def _expired(envelope: _Envelope, now_ms: int) -> bool:
    return envelope.expires_ms is not None and envelope.expires_ms <= now_ms


def open_redis_vault(settings: VaultSettings) -> RedisVault:
    """The policy's Redis vault. Its keys must come from the shared key env or file: one generated here
    would differ per replica, so none is."""
    keyring = load_keyring(settings.key_env, Path(settings.key_file), create=False)
    url = redis_url(settings)
    where = describe_url(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            # One immediate retry on a dropped connection (a Redis restart leaves stale pooled sockets);
            # a timeout is not retried, so a request waits at most about twice the timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            health_check_interval=30,
            client_name="privacy-proxy",
        )
    except ValueError:
        raise VaultError(f"vault redis URL ({where}) is not a redis://, rediss:// or unix:// URL") from None
    return RedisVault(client, keyring, settings.ttl, prefix=settings.redis_prefix, where=where)
