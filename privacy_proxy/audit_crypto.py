"""Keys for the audit log beyond its HMAC: Ed25519 checkpoint signatures and sealed originals.

- **Checkpoints** are signed with an Ed25519 key the proxy holds; anyone with the public key can check
  them (`privacy-proxy audit verify LOG --public-key FILE`) without the HMAC key.
- **Sealed originals** are encrypted to an auditor's X25519 public key: a fresh ephemeral X25519 key per
  record, HKDF-SHA256 over the shared secret, AES-256-GCM with the record's request id as associated data.
  The proxy keeps no private key for them, so it cannot read them back; `privacy-proxy audit unseal`
  with the auditor's private key can.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "SealError",
    "Sealer",
    "Signer",
    "checkpoint_message",
    "load_or_create_signing_key",
    "load_public_keys",
    "load_seal_private_key",
    "load_seal_public_key",
    "public_key_id",
    "unseal",
    "verify_signature",
    "write_keypair",
]

_HEX32 = re.compile(r"[0-9a-fA-F]{64}")
_SEAL_INFO = b"privacy-proxy audit seal v1"
_CHECKPOINT_LABEL = b"privacy-proxy audit checkpoint v1\n"
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SealError(Exception):
    """A key file cannot be used, or a sealed value cannot be opened (wrong key, altered blob)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_key_id(public: Ed25519PublicKey | X25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(*_RAW)).hexdigest()[:16]


def _private_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _public_pem(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_keypair(private_path: Path, key: Ed25519PrivateKey | X25519PrivateKey, *, exclusive: bool = True) -> Path:
    """Private key PEM (0600) at ``private_path`` and its public key at the same name with ``.pub``."""
    private_path = Path(private_path)
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_private_pem(key))
        f.flush()
        os.fsync(f.fileno())
    public_path = private_path.with_suffix(".pub")
    public_path.write_bytes(_public_pem(key.public_key()))
    return public_path


def _read_private(path: Path) -> bytes:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & 0o077:
        raise SealError(f"key file {path} is readable by group or others; fix with: chmod 600 {path}")
    return path.read_bytes()


class Signer:
    """Signs checkpoints with an Ed25519 private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = public_key_id(self.public)

    def sign(self, message: bytes) -> str:
        return _b64(self._private.sign(message))

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, private=[secure])"


def load_or_create_signing_key(env_var: str | None, key_file: Path) -> Signer:
    """Ed25519 key from ``env_var`` (hex seed or PEM), else ``key_file`` (PEM), else a new pair (0600 + .pub)."""
    value = os.environ.get(env_var, "") if env_var else ""
    try:
        if value.strip():
            text = value.strip()
            if _HEX32.fullmatch(text):
                return Signer(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text)))
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            key_file = Path(key_file)
            if not key_file.exists():
                key = Ed25519PrivateKey.generate()
                try:
                    write_keypair(key_file, key)
                except FileExistsError:  # another process made it first: use theirs
                    key = serialization.load_pem_private_key(_read_private(key_file), password=None)
            else:
                key = serialization.load_pem_private_key(_read_private(key_file), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SealError(f"audit signing key ({'$' + env_var if value else key_file}) is not usable: {type(exc).__name__}") from None
    except OSError as exc:
        raise SealError(f"cannot read or create audit signing key {key_file}: {exc.strerror}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SealError("the audit signing key is not an Ed25519 key")
    return Signer(key)


def _read_public_key(path: Path, kind: type[Any], what: str, wrong_kind: str) -> Any:
    """The PEM public key at ``path``, which must be a ``kind``; ``what`` names the file in errors."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SealError(f"{what}: not a PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, kind):
        raise SealError(f"{what}: {wrong_kind}")
    return key


def load_public_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """Ed25519 public keys (PEM) by key id, for verifying checkpoints."""
    keys = [_read_public_key(path, Ed25519PublicKey, str(path), "not an Ed25519 public key") for path in paths]
    return {public_key_id(key): key for key in keys}


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    """What a checkpoint's signature covers: every field but the signature, hash and hmac, canonically."""
    body = {k: v for k, v in checkpoint.items() if k not in ("signature", "hash", "hmac")}
    return _CHECKPOINT_LABEL + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def verify_signature(checkpoint: Mapping[str, Any], public_keys: Mapping[str, Ed25519PublicKey]) -> str:
    """"" when the checkpoint is signed by one of ``public_keys``, else the reason."""
    signer, signature = checkpoint.get("signer"), checkpoint.get("signature")
    if not isinstance(signer, str) or not isinstance(signature, str):
        return "checkpoint is not signed"
    public = public_keys.get(signer)
    if public is None:
        return f"checkpoint signed by unknown key {signer}"
    try:
        public.verify(base64.b64decode(signature, validate=True), checkpoint_message(checkpoint))
    except (InvalidSignature, ValueError):
        return "bad checkpoint signature"
    return ""


# --- sealed originals -------------------------------------------------------------------------------


def load_seal_public_key(path: Path) -> X25519PublicKey:
    return _read_public_key(path, X25519PublicKey, f"audit.seal_to {path}",
                            "not an X25519 public key (privacy-proxy audit keygen seal DIR)")


def load_seal_private_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_private(Path(path)), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SealError(f"{path}: not a PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, X25519PrivateKey):
        raise SealError(f"{path}: not an X25519 private key")
    return key


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_SEAL_INFO).derive(shared)


class Sealer:
    """Encrypts JSON values to the auditor's X25519 public key; holds no way to decrypt them."""

    def __init__(self, recipient: X25519PublicKey) -> None:
        self._recipient = recipient
        self._recipient_raw = recipient.public_bytes(*_RAW)
        self.key_id = public_key_id(recipient)

    def seal(self, value: Any, aad: str) -> dict[str, Any]:
        ephemeral = X25519PrivateKey.generate()
        ephemeral_raw = ephemeral.public_key().public_bytes(*_RAW)
        key = _seal_key(ephemeral.exchange(self._recipient), ephemeral_raw, self._recipient_raw)
        nonce = os.urandom(12)
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        sealed = AESGCM(key).encrypt(nonce, plain, aad.encode("utf-8", "surrogatepass"))
        return {"v": 1, "kid": self.key_id, "epk": _b64(ephemeral_raw), "nonce": _b64(nonce), "ct": _b64(sealed)}


def unseal(blob: Mapping[str, Any], private: X25519PrivateKey, aad: str) -> Any:
    """Open a sealed value with the auditor's private key; SealError if it is not for this key or was altered."""
    try:
        if blob.get("v") != 1:
            raise SealError("unknown sealed-value version")
        if blob.get("kid") != public_key_id(private.public_key()):
            raise SealError(f"sealed to another key ({blob.get('kid')})")
        ephemeral_raw = base64.b64decode(blob["epk"], validate=True)
        recipient_raw = private.public_key().public_bytes(*_RAW)
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _seal_key(shared, ephemeral_raw, recipient_raw)
        plain = AESGCM(key).decrypt(base64.b64decode(blob["nonce"], validate=True),
                                    base64.b64decode(blob["ct"], validate=True), aad.encode("utf-8", "surrogatepass"))
    except SealError:
        raise
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise SealError(f"sealed value cannot be opened ({type(exc).__name__})") from None
    return json.loads(plain)
