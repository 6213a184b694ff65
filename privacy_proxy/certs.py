"""`privacy-proxy certs init DIR`: a local CA and a server certificate for the proxy's HTTPS listener.

Files written (private keys 0600, nothing overwritten unless asked):

    ca.pem            the CA certificate: what clients trust (httpx verify=, curl --cacert)
    ca-key.pem        the CA's private key: keep it offline once the server certificate exists
    server.pem        the server certificate (leaf then CA), SANs localhost, 127.0.0.1, ::1 and --host names
    server-key.pem    the server's private key: `privacy-proxy serve --tls-cert server.pem --tls-key server-key.pem`
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "CertPaths", "init_certs", "trust_instructions"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "privacy-proxy (local)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def init_certs(
    directory: Path, *, hosts: list[str] | None = None, days: int = 397, ca_days: int = 3650, force: bool = False
) -> CertPaths:
    """Create the CA and a server certificate signed by it; refuse to overwrite unless ``force``."""
    directory = Path(directory)
    paths = CertPaths(directory / "ca.pem", directory / "ca-key.pem", directory / "server.pem", directory / "server-key.pem")
    existing = [p for p in vars(paths).values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to replace the certificates in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    all_hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *(hosts or [])]))
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # tolerate small clock skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("privacy-proxy local CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(all_hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(all_hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    _write_private(paths.ca_key, ca_key)
    _write_private(paths.server_key, server_key)
    paths.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    paths.server_cert.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return paths


def trust_instructions(paths: CertPaths, port: int = 8787) -> str:
    """How to serve with the certificate and how clients trust the CA (printed by `certs init`)."""
    ca = paths.ca_cert
    return f"""\
Serve over HTTPS:
  privacy-proxy serve --tls-cert {paths.server_cert} --tls-key {paths.server_key}
  (or in the policy: server: {{tls_cert: {paths.server_cert}, tls_key: {paths.server_key}}})

Trust the CA in the openai SDK (Python):
  import ssl, httpx
  from openai import OpenAI
  client = OpenAI(base_url="https://127.0.0.1:{port}/v1", api_key="...",
                  http_client=httpx.Client(verify=ssl.create_default_context(cafile="{ca}")))
  (or set SSL_CERT_FILE={ca} in the client's environment)

Trust the CA in curl:
  curl --cacert {ca} https://127.0.0.1:{port}/healthz

Keep {paths.ca_key} offline (it can mint certificates your clients trust); it is only needed to renew.
"""
