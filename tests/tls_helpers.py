"""Test-side TLS: certificates made here with `cryptography` (not with the proxy's own code), a real
HTTPS OpenAI-style upstream on loopback, and a launcher for a proxy process that serves HTTPS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conftest import ProxyProcess, start_proxy
from loopback_server import LoopbackServer

NOW = dt.datetime.now(dt.timezone.utc)


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@dataclass
class Issued:
    cert: Path
    key: Path
    certificate: x509.Certificate


class TestCA:
    """A throwaway CA that writes its certificate and the ones it issues under `directory`."""

    __test__ = False

    def __init__(self, directory: Path, name: str = "test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert = directory / f"{name.replace(' ', '-')}.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        *,
        expired: bool = False,
        client: bool = False,
        password: bytes | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = (NOW - dt.timedelta(days=10), NOW - dt.timedelta(days=1)) if expired else (
            NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=10))
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        cert, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}-key.pem"
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key, password))
        key_path.chmod(0o600)
        return Issued(cert, key_path, certificate)


def echo_completion(body: dict[str, Any]) -> dict[str, Any]:
    text = next((m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return {
        "id": "chatcmpl-tls", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@dataclass
class TLSUpstream:
    """An HTTPS OpenAI-style echo server on 127.0.0.1 (uvicorn in a thread); `client_ca` requires mTLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            return JSONResponse(echo_completion(body))

        async def models(request: Request) -> JSONResponse:
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": None})
            return JSONResponse({"object": "list", "data": [{"id": "tls-model", "object": "model", "created": 0,
                                                             "owned_by": "test"}]})

        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])
        self._server = LoopbackServer(
            app, name="TLS upstream", log_level="critical", ssl_certfile=str(self.cert), ssl_keyfile=str(self.key),
            ssl_ca_certs=str(self.client_ca) if self.client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if self.client_ca else ssl.CERT_NONE,
        )
        self.port = self._server.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> TLSUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HTTPSProxyProcess(ProxyProcess):
    """A proxy process serving HTTPS; health checks trust `ca`."""

    ca: Path

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.origin}/healthz", timeout=5, verify=ssl.create_default_context(cafile=str(self.ca)))


def start_https_proxy(
    policy_text: str, workdir: Path, upstream: str, ca: Path, extra_args: list[str], extra_env: dict[str, str] | None = None
) -> HTTPSProxyProcess:
    """conftest.start_proxy for a proxy listening with TLS (flags or policy); its health checks trust `ca`."""

    def make(*fields: Any) -> HTTPSProxyProcess:
        proxy = HTTPSProxyProcess(*fields)
        proxy.ca = ca
        return proxy

    proxy = start_proxy(policy_text, workdir, upstream, extra_env, extra_args=extra_args, make=make)
    assert isinstance(proxy, HTTPSProxyProcess)
    return proxy
