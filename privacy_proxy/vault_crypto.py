"""Vault keys and record sealing, shared by every encrypted vault backend (SQLite, Redis).

- A record (JSON) is encrypted with the key ring's newest key under a fresh 96-bit random nonce
  (AES-256-GCM).
- The associated data binds the ciphertext to where it is stored: ``["privacy-proxy vault v1", scope, key,
  expires_ms]``. A ciphertext copied to another (scope, key), or an expiry pushed back, fails authentication.
- ``key_id`` (a fingerprint of the key, not the key) says which key sealed a record. Old keys in the ring
  still decrypt; backends re-seal records under the newest key on rotation.
- Any failure to authenticate raises VaultError: a wrong key never yields garbage.

Key sources: ``vault.key_env`` (comma-separated hex, newest last), else ``vault.key_file`` (one hex key per
line, newest last), else a new key file (0600) when the backend allows one to be made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy_proxy.vault import Record, VaultError

__all__ = [
    "SealedRecord",
    "VaultKeyring",
    "add_key_to_file",
    "key_id",
    "load_keyring",
    "open_record",
    "seal_record",
    "write_key_file",
]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_AAD_LABEL = "privacy-proxy vault v1"
_KEY_FILE_HEADER = "# privacy-proxy vault keys, oldest first; the last one encrypts\n"


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (stored per record); reveals nothing usable about the key."""
    return hashlib.sha256(b"privacy-proxy vault key id\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class VaultKeyring:
    """AES-256 keys, oldest first; the last one encrypts, every one decrypts."""

    keys: dict[str, bytes]
    source: str

    @property
    def current_id(self) -> str:
        return next(reversed(self.keys))

    def __repr__(self) -> str:
        return f"VaultKeyring(ids={list(self.keys)!r}, source={self.source!r}, keys=[secure])"

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
        f.write(_KEY_FILE_HEADER + secrets.token_hex(32) + "\n")
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
    text = _KEY_FILE_HEADER + "".join(k.hex() + "\n" for k in keys)
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


# --- records ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedRecord:
    """What a backend stores for one record, beside its (scope, key) and expiry."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def _aad(scope: str, key: str, expires_ms: int | None) -> bytes:
    return json.dumps([_AAD_LABEL, scope, key, expires_ms], ensure_ascii=False).encode("utf-8", "surrogatepass")


def seal_record(keyring: VaultKeyring, scope: str, key: str, record: Record, expires_ms: int | None) -> SealedRecord:
    """Encrypt ``record`` under the ring's newest key, bound to (scope, key, expires_ms)."""
    try:
        plain = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        raise VaultError("the record is not JSON-serialisable") from None
    kid = keyring.current_id
    nonce = secrets.token_bytes(12)
    return SealedRecord(kid, nonce, AESGCM(keyring.keys[kid]).encrypt(nonce, plain, _aad(scope, key, expires_ms)))


def open_record(keyring: VaultKeyring, scope: str, key: str, sealed: SealedRecord, expires_ms: int | None) -> Record:
    """Decrypt and authenticate a record stored at (scope, key) with ``expires_ms``; VaultError otherwise."""
    secret = keyring.keys.get(sealed.key_id)
    if secret is None:
        raise VaultError(f"vault record was written with key id {sealed.key_id}, which is not in the key ring")
    try:
        plain = AESGCM(secret).decrypt(sealed.nonce, sealed.ciphertext, _aad(scope, key, expires_ms))
    except (InvalidTag, ValueError):
        raise VaultError("vault record failed authentication (wrong key, or the row was altered or moved)") from None
    record = json.loads(plain)
    if not isinstance(record, dict):
        raise VaultError("vault record is not a JSON object")
    return record
