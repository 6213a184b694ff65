"""TLS toward the upstream: verification always on, a custom CA bundle, SPKI pins and mTLS.

The pin check lives in the SSL context itself: `UpstreamSSLContext` makes its TLS objects check the
peer certificate's SubjectPublicKeyInfo SHA-256 at the end of the handshake, after the normal chain and
hostname verification and before `do_handshake()` returns — so a mismatch aborts the connection before
a single request byte is written, whatever HTTP stack drives the socket (httpx/httpcore with anyio's
memory-BIO streams, or a blocking socket).

    pin        "sha256/<base64 of SHA-256(DER SubjectPublicKeyInfo)>"   (curl's "sha256//…" is accepted)
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.model import UpstreamSettings, is_loopback_url

__all__ = [
    "PinMismatch",
    "UpstreamSSLContext",
    "check_listener_files",
    "describe_tls_failure",
    "format_pin",
    "is_insecure_upstream",
    "parse_pin",
    "pin_of_file",
    "spki_sha256",
    "upstream_ssl_context",
]


class PinMismatch(ssl.SSLCertVerificationError):
    """The upstream's certificate key is not one of `upstream.pins`; the connection was aborted."""


def parse_pin(pin: str) -> bytes:
    """`sha256/<base64>` (or curl's `sha256//<base64>`) → the 32-byte digest."""
    if not pin.startswith("sha256/"):
        raise ValueError("a pin starts with sha256/")
    digest = base64.b64decode(pin.removeprefix("sha256/").lstrip("/"), validate=True)
    if len(digest) != 32:
        raise ValueError("a pin is the base64 of 32 bytes")
    return digest


def format_pin(digest: bytes) -> str:
    return "sha256/" + base64.b64encode(digest).decode("ascii")


def _key_sha256(public_key: PublicKeyTypes) -> bytes:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def spki_sha256(der_certificate: bytes) -> bytes:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (the HPKP / curl --pinnedpubkey pin)."""
    return _key_sha256(x509.load_der_x509_certificate(der_certificate).public_key())


def pin_of_file(path: Path) -> str:
    """The pin of a PEM/DER certificate or PEM public key file (for `privacy-proxy certs pin`)."""
    data = Path(path).read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return format_pin(_key_sha256(x509.load_pem_x509_certificate(data).public_key()))
    if b"-----BEGIN PUBLIC KEY-----" in data:
        return format_pin(_key_sha256(serialization.load_pem_public_key(data)))
    return format_pin(spki_sha256(data))


def _enforce_pins(tls: ssl.SSLObject | ssl.SSLSocket) -> None:
    pins = getattr(tls.context, "spki_pins", frozenset())
    if not pins:
        return
    der = tls.getpeercert(binary_form=True)
    if not der or spki_sha256(der) not in pins:
        # errno/strerror set so callers that read exc.strerror see the reason.
        raise PinMismatch(1, "the upstream certificate's public key matches none of upstream.pins")


class _PinnedSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until done; chain + hostname verified by OpenSSL
        _enforce_pins(self)


class _PinnedSSLSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _enforce_pins(self)


class UpstreamSSLContext(ssl.SSLContext):
    """A client context whose connections also check `spki_pins` (empty: no pinning)."""

    sslobject_class = _PinnedSSLObject
    sslsocket_class = _PinnedSSLSocket
    spki_pins: frozenset[bytes] = frozenset()


def upstream_ssl_context(settings: UpstreamSettings) -> UpstreamSSLContext:
    """Verified TLS 1.2+ client context from the policy; raises ConfigError naming the bad file."""
    context = UpstreamSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname are on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cafile = settings.ca_bundle or certifi.where()
    try:
        context.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"upstream.ca_bundle {cafile}: cannot load CA certificates ({_why(exc)})") from None
    if settings.client_cert:
        password = os.environ.get(settings.client_key_password_env) if settings.client_key_password_env else None
        try:
            context.load_cert_chain(settings.client_cert, settings.client_key, password=password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"upstream.client_cert {settings.client_cert}: cannot load the client certificate and key ({_why(exc)})"
            ) from None
    context.spki_pins = frozenset(parse_pin(pin) for pin in settings.pins)
    context.set_alpn_protocols(["http/1.1"])
    return context


def is_insecure_upstream(base_url: str) -> bool:
    """Plain http:// to a host that is not loopback (allowed only by allow_insecure_upstream)."""
    return base_url.startswith("http://") and not is_loopback_url(base_url)


def check_listener_files(cert: str, key: str) -> None:
    """Load the listener's certificate and key once, so a bad file is a clear start-up error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert {cert} / server.tls_key {key}: cannot load ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return getattr(exc, "reason", None) or type(exc).__name__


_VERIFY_REASONS = {
    10: "the certificate has expired",
    9: "the certificate is not yet valid",
    18: "the certificate is self-signed and not trusted",
    19: "the certificate chain is not trusted",
    20: "the certificate's issuer is not trusted",
    21: "the certificate's issuer is not trusted",
    62: "the certificate does not match the upstream's host name",
    64: "the certificate does not match the upstream's IP address",
}


def describe_tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """(code, client-safe message) when a TLS problem caused `exc` (walks the cause chain), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PinMismatch):
            return "upstream_pin_mismatch", (
                "the upstream's certificate does not match the pinned public keys (upstream.pins); "
                "the connection was refused before the request was sent"
            )
        if isinstance(current, ssl.SSLCertVerificationError):
            reason = _VERIFY_REASONS.get(current.verify_code or 0, "the certificate could not be verified")
            return "upstream_tls_error", f"the upstream's TLS certificate was refused: {reason}"
        if isinstance(current, ssl.SSLError):
            reason = (current.reason or "handshake failed").lower().replace("_", " ")
            return "upstream_tls_error", f"the TLS connection to the upstream failed ({reason})"
        current = current.__cause__ or current.__context__
    return None
