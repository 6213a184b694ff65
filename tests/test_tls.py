"""Encrypted transport: the upstream TLS client (verification, CA bundle, SPKI pins, mTLS, insecure http)
against real TLS servers on loopback, and the proxy's own HTTPS listener with the openai SDK."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import TEST_POLICY, finish_proxy, start_proxy
from tls_helpers import TestCA, TLSUpstream, start_https_proxy
from privacy_proxy.errors import ConfigError, UpstreamError
from privacy_proxy.policy.loader import parse_policy
from privacy_proxy.policy.model import UpstreamSettings
from privacy_proxy.tls import format_pin, parse_pin, pin_of_file, spki_sha256, upstream_ssl_context
from privacy_proxy.upstream import Upstream

UPSTREAM_LINE = 'upstream: {base_url: "http://127.0.0.1:1/v1", timeouts: {connect: 2, read: 10, write: 10, pool: 5}}'
assert UPSTREAM_LINE in TEST_POLICY


def policy_with_upstream(**settings: object) -> str:
    fields = {"base_url": "https://127.0.0.1:1/v1", "timeouts": {"connect": 2, "read": 10, "write": 10, "pool": 5},
              **settings}
    return TEST_POLICY.replace(UPSTREAM_LINE, "upstream: " + json.dumps(fields))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    directory = tmp_path_factory.mktemp("pki")
    ca, rogue = TestCA(directory, "test CA"), TestCA(directory, "rogue CA")
    return {
        "ca": ca,
        "good": ca.issue("good"),
        "other": ca.issue("other"),  # same CA, another key: a valid chain with the wrong pin
        "expired": ca.issue("expired", expired=True),
        "localhost_only": ca.issue("localhost-only", hosts=("localhost",)),
        "untrusted": rogue.issue("untrusted"),
        "client": ca.issue("client", hosts=(), client=True),
        "client_locked": ca.issue("client-locked", hosts=(), client=True, password=b"pass phrase"),
    }


@pytest.fixture(scope="module")
def servers(pki: dict) -> Iterator[dict[str, TLSUpstream]]:
    ca: TestCA = pki["ca"]
    started = {
        "good": TLSUpstream(pki["good"].cert, pki["good"].key),
        "expired": TLSUpstream(pki["expired"].cert, pki["expired"].key),
        "localhost_only": TLSUpstream(pki["localhost_only"].cert, pki["localhost_only"].key),
        "untrusted": TLSUpstream(pki["untrusted"].cert, pki["untrusted"].key),
        "mtls": TLSUpstream(pki["good"].cert, pki["good"].key, client_ca=ca.cert),
    }
    yield started
    for server in started.values():
        server.stop()


def run_chat(settings: UpstreamSettings) -> tuple[int, dict]:
    async def go() -> tuple[int, dict]:
        upstream = Upstream(settings)
        try:
            response = await upstream.send("POST", "/chat/completions", headers=upstream.request_headers({}),
                                           content=b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
            body = json.loads(await response.aread())
            await response.aclose()
            return response.status_code, body
        finally:
            await upstream.aclose()

    return asyncio.run(go())


def settings_for(server: TLSUpstream, **extra: object) -> UpstreamSettings:
    return UpstreamSettings(base_url=server.base_url, **extra)


# --- pins ----------------------------------------------------------------------------------------------


def test_pin_helpers_agree_with_an_independent_computation(pki: dict) -> None:
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization

    cert = pki["good"].certificate
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert pin_of_file(pki["good"].cert) == expected
    assert format_pin(spki_sha256(cert.public_bytes(serialization.Encoding.DER))) == expected
    assert parse_pin(expected.replace("sha256/", "sha256//")) == hashlib.sha256(spki).digest()
    cli = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "certs", "pin", str(pki["good"].cert)],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.strip() == expected


def test_policy_checks_pins_and_insecure_http() -> None:
    with pytest.raises(ConfigError, match="allow_insecure_upstream"):
        parse_policy('name: p\nupstream: {base_url: "http://api.example.com/v1"}\n')
    assert parse_policy('name: p\nupstream: {base_url: "http://api.example.com/v1", allow_insecure_upstream: true}\n')
    for loopback in ("http://127.0.0.1:8080/v1", "http://localhost:8080/v1", "http://[::1]:8080/v1"):
        assert parse_policy(f'name: p\nupstream: {{base_url: "{loopback}"}}\n')
    with pytest.raises(ConfigError, match="pins"):
        parse_policy('name: p\nupstream: {base_url: "https://a.example/v1", pins: ["sha256/short"]}\n')
    with pytest.raises(ConfigError, match="https"):
        parse_policy('name: p\nupstream: {base_url: "http://127.0.0.1/v1", client_cert: c.pem}\n')


# --- the upstream client against real TLS servers -------------------------------------------------------


def test_good_certificate_from_the_ca_bundle_works(pki: dict, servers: dict) -> None:
    server = servers["good"]
    before = len(server.requests)
    status, body = run_chat(settings_for(server, ca_bundle=str(pki["ca"].cert)))
    assert status == 200 and body["choices"][0]["message"]["content"] == "hi"
    assert len(server.requests) == before + 1


def test_verification_is_always_on(servers: dict) -> None:
    # Without the test CA in the bundle, the system/certifi roots do not know this server: refused.
    with pytest.raises(UpstreamError) as caught:
        run_chat(settings_for(servers["good"]))
    assert caught.value.code == "upstream_tls_error" and caught.value.status == 502
    assert "not trusted" in caught.value.message


@pytest.mark.parametrize(
    ("server", "reason"),
    [("expired", "expired"), ("untrusted", "not trusted"), ("localhost_only", "does not match")],
)
def test_bad_certificates_are_refused(pki: dict, servers: dict, server: str, reason: str) -> None:
    target = servers[server]
    before = len(target.requests)
    with pytest.raises(UpstreamError) as caught:
        run_chat(settings_for(target, ca_bundle=str(pki["ca"].cert)))
    assert caught.value.code == "upstream_tls_error" and reason in caught.value.message
    assert caught.value.retryable is False
    assert "127.0.0.1" not in caught.value.message
    assert len(target.requests) == before


def test_matching_pin_works_and_wrong_pin_is_refused(pki: dict, servers: dict) -> None:
    server, ca = servers["good"], str(pki["ca"].cert)
    good, other = pin_of_file(pki["good"].cert), pin_of_file(pki["other"].cert)
    assert run_chat(settings_for(server, ca_bundle=ca, pins=[other, good]))[0] == 200
    before = len(server.requests)
    with pytest.raises(UpstreamError) as caught:
        run_chat(settings_for(server, ca_bundle=ca, pins=[other]))
    assert caught.value.code == "upstream_pin_mismatch" and caught.value.status == 502
    assert "pinned" in caught.value.message and len(server.requests) == before


def test_pin_mismatch_aborts_before_any_request_byte(pki: dict) -> None:
    """A raw TLS server records every application byte it reads: with a wrong pin there are none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["good"].cert, pki["good"].key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received: list[bytes] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    data = tls.recv(65536)
                    received.append(data)
                    if data:
                        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
                                    b"connection: close\r\n\r\n{}")
            except (ssl.SSLError, OSError):
                received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    base = f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
    ca = str(pki["ca"].cert)
    assert run_chat(UpstreamSettings(base_url=base, ca_bundle=ca, pins=[pin_of_file(pki["good"].cert)]))[0] == 200
    with pytest.raises(UpstreamError, match="pinned"):
        run_chat(UpstreamSettings(base_url=base, ca_bundle=ca, pins=[pin_of_file(pki["other"].cert)]))
    thread.join(timeout=10)
    listener.close()
    assert received[0].startswith(b"POST /v1/chat/completions")
    assert received[1] == b""  # not one byte of the request reached the server


def test_mtls_required_and_presented(pki: dict, servers: dict) -> None:
    server, ca = servers["mtls"], str(pki["ca"].cert)
    before = len(server.requests)
    with pytest.raises(UpstreamError) as caught:
        run_chat(settings_for(server, ca_bundle=ca))
    assert caught.value.status == 502 and len(server.requests) == before
    status, _ = run_chat(settings_for(server, ca_bundle=ca, client_cert=str(pki["client"].cert),
                                      client_key=str(pki["client"].key)))
    assert status == 200 and len(server.requests) == before + 1


def test_mtls_key_with_a_passphrase_from_the_environment(pki: dict, servers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = pki["client_locked"]
    settings = settings_for(servers["mtls"], ca_bundle=str(pki["ca"].cert), client_cert=str(locked.cert),
                            client_key=str(locked.key), client_key_password_env="PP_TEST_KEY_PASS")
    with pytest.raises(ConfigError, match="client_cert"):
        upstream_ssl_context(settings)  # no passphrase: a clear start-up error, not a prompt
    monkeypatch.setenv("PP_TEST_KEY_PASS", "pass phrase")
    assert run_chat(settings)[0] == 200


def test_unreadable_tls_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_bundle"):
        upstream_ssl_context(UpstreamSettings(base_url="https://a.example/v1", ca_bundle=str(tmp_path / "none.pem")))
    with pytest.raises(ConfigError, match="client_cert"):
        upstream_ssl_context(UpstreamSettings(base_url="https://a.example/v1", client_cert=str(tmp_path / "c.pem")))


# --- the proxy process in front of TLS upstreams --------------------------------------------------------


def test_proxy_over_pinned_mtls_upstream_with_the_openai_sdk(pki: dict, servers: dict, tmp_path: Path) -> None:
    server = servers["mtls"]
    policy = policy_with_upstream(ca_bundle=str(pki["ca"].cert), pins=[pin_of_file(pki["good"].cert)],
                                  client_cert=str(pki["client"].cert), client_key=str(pki["client"].key))
    proxy = start_proxy(policy, tmp_path, server.base_url)
    try:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Mail jane@example.com"}])
        assert reply.choices[0].message.content == "Mail jane@example.com"
        sent = server.requests[-1]
        assert sent["body"]["messages"][0]["content"] == "Mail [EMAIL_ADDRESS_1]"
        assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"
        record = json.loads(proxy.audit_path.read_text().splitlines()[-1])
        assert record["upstream_status"] == 200 and "insecure_upstream" not in record
    finally:
        finish_proxy(proxy)


@pytest.mark.parametrize(("server", "pin", "code"), [("good", "other", "upstream_pin_mismatch"),
                                                       ("expired", None, "upstream_tls_error")])
def test_proxy_refuses_bad_upstream_certificates_with_502(
    pki: dict, servers: dict, tmp_path: Path, server: str, pin: str | None, code: str
) -> None:
    target = servers[server]
    extra = {"pins": [pin_of_file(pki[pin].cert)]} if pin else {}
    proxy = start_proxy(policy_with_upstream(ca_bundle=str(pki["ca"].cert), **extra), tmp_path, target.base_url)
    try:
        before = len(target.requests)
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=2)
        with pytest.raises(openai.APIStatusError) as caught:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Mail jane@example.com"}])
        response = caught.value.response
        assert response.status_code == 502 and response.headers["x-should-retry"] == "false"
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
        assert len(target.requests) == before
        records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
        assert len(records) == 1  # the SDK did not retry
        assert records[0]["fault"] == code and records[0]["decision"] == "error"
        assert "jane@example.com" not in proxy.audit_path.read_text() + proxy.log()
        upstream_health = httpx.get(f"{proxy.origin}/healthz/upstream").json()
        assert upstream_health == {"reachable": False, "error": code}
    finally:
        finish_proxy(proxy)


def test_insecure_upstream_is_named_in_every_audit_record(fake, tmp_path: Path) -> None:
    # A non-loopback http:// upstream runs only with the flag; nothing here connects to it (a blocked
    # request and a malformed one never leave), so the network guard stays quiet.
    policy = TEST_POLICY.replace(UPSTREAM_LINE, 'upstream: {base_url: "http://upstream.example/v1", '
                                 'allow_insecure_upstream: true}')
    proxy = start_proxy(policy, tmp_path, "http://upstream.example/v1")
    try:
        blocked = httpx.post(f"{proxy.base_url}/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]})
        assert blocked.status_code == 403
        assert httpx.post(f"{proxy.base_url}/chat/completions", content=b"{bad").status_code == 400
        records = [json.loads(line) for line in proxy.audit_path.read_text().splitlines()]
        assert len(records) == 2 and all(r["insecure_upstream"] is True for r in records)
        assert "unencrypted" in proxy.log()
    finally:
        finish_proxy(proxy)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(TEST_POLICY)
    refused = subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(policy_path),
         "--upstream", "http://api.example.com/v1", "--port", "1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert refused.returncode != 0 and "allow_insecure_upstream" in refused.stderr


# --- the proxy's own HTTPS listener ---------------------------------------------------------------------


def test_certs_init_and_https_listener_with_the_openai_sdk(fake, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    init = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "certs", "init", str(certs)],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert "--cacert" in init.stdout and "http_client=httpx.Client(verify=" in init.stdout
    assert (certs / "server-key.pem").stat().st_mode & 0o077 == 0
    again = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "certs", "init", str(certs)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "--force" in again.stderr  # never overwrites silently

    proxy = start_https_proxy(TEST_POLICY, tmp_path / "run", fake.base_url, certs / "ca.pem",
                              ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server-key.pem")])
    try:
        trust = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        for host in ("127.0.0.1", "localhost"):
            sdk = openai.OpenAI(base_url=f"https://{host}:{proxy.port}/v1", api_key="k", max_retries=0,
                                http_client=httpx.Client(verify=trust))
            reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Call John Smith"}])
            assert reply.choices[0].message.content == "Call John Smith"
            assert fake.requests[-1].json["messages"][0]["content"] == "Call [PERSON_1]"
        with pytest.raises(httpx.ConnectError):  # not trusted without the CA
            httpx.get(f"{proxy.origin}/healthz")
        with pytest.raises(httpx.HTTPError):  # plain http to the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{proxy.port}/healthz", timeout=5)
        assert "listening on https://" in proxy.log()
    finally:
        finish_proxy(proxy)


def test_https_listener_from_the_policy_and_a_bad_key_is_a_clear_error(fake, tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("listener")
    policy = TEST_POLICY.replace("server: {max_body_bytes: 262144}",
                                 f'server: {{max_body_bytes: 262144, tls_cert: "{server.cert}", tls_key: "{server.key}"}}')
    proxy = start_https_proxy(policy, tmp_path / "run", fake.base_url, ca.cert, [])
    try:
        assert proxy.health().json()["status"] == "ok"
    finally:
        finish_proxy(proxy)
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy.replace(str(server.key), str(ca.cert)))
    result = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(bad), "--port", "1"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0 and "server.tls_cert" in result.stderr and "Traceback" not in result.stderr
