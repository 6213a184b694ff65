"""The loopback-only network guard, in this process and in a subprocess via sitecustomize."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so `netguard` imports without the lead's conftest too
from netguard import guard  # noqa: E402

NETGUARD_DIR = Path(__file__).parent / "netguard"
TEST_NET = "203.0.113.1"  # TEST-NET-3: never routed; the guard stops us before connect() anyway


@pytest.fixture(autouse=True)
def _installed() -> None:
    guard.install()  # idempotent: a no-op when the conftest already did it


def test_blocks_create_connection_outside_loopback() -> None:
    with guard.capture() as caught, pytest.raises(guard.NetworkBlocked) as info:
        socket.create_connection((TEST_NET, 443), timeout=1)
    assert str(info.value) == f"network access outside loopback blocked: {TEST_NET}"
    assert isinstance(info.value, ConnectionRefusedError)
    assert [(v.host, v.port) for v in caught] == [(TEST_NET, 443)]


@pytest.mark.parametrize("address", [(TEST_NET, 80), ("::ffff:203.0.113.1", 80), ("0.0.0.0", 80)])
def test_blocks_raw_connect_and_connect_ex(address: tuple[str, int]) -> None:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with guard.capture() as caught, socket.socket(family, socket.SOCK_STREAM) as s:
        with pytest.raises(guard.NetworkBlocked):
            s.connect(address)
        with pytest.raises(guard.NetworkBlocked):
            s.connect_ex(address)
    assert [v.op for v in caught] == ["connect", "connect_ex"]


def test_blocks_udp_sendto() -> None:
    with guard.capture() as caught, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(guard.NetworkBlocked):
            s.sendto(b"x", (TEST_NET, 53))
    assert len(caught) == 1


@pytest.mark.parametrize("lookup", ["getaddrinfo", "gethostbyname", "gethostbyname_ex"])
def test_blocks_dns_of_public_names(lookup: str) -> None:
    with guard.capture() as caught, pytest.raises(guard.NetworkBlocked, match="example.com"):
        getattr(socket, lookup)("example.com", *([443] if lookup == "getaddrinfo" else []))
    assert caught[0].op == lookup and caught[0].host == "example.com"


def test_httpx_and_asyncio_are_blocked() -> None:
    with guard.capture() as caught:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{TEST_NET}/", timeout=2)
        with pytest.raises(httpx.ConnectError):
            httpx.get("https://api.openai.com/v1/models", timeout=2)
        with pytest.raises(guard.NetworkBlocked):
            asyncio.run(asyncio.open_connection(TEST_NET, 80))
    assert {v.host for v in caught} == {TEST_NET, "api.openai.com"}


def _echo_server(family: int, host: str) -> tuple[socket.socket, int]:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(4)

    def serve() -> None:
        for _ in range(3):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"ok")

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_allows_loopback() -> None:
    with guard.capture() as caught:
        srv, port = _echo_server(socket.AF_INET, "127.0.0.1")
        with srv:
            for host in ("127.0.0.1", "localhost"):
                with socket.create_connection((host, port), timeout=5) as c:
                    assert c.recv(2) == b"ok"
            assert socket.getaddrinfo("127.0.0.2", 80) and socket.getaddrinfo(None, 80)
            assert socket.gethostbyname("localhost").startswith("127.")
    assert caught == []


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_allows_ipv6_loopback() -> None:
    try:
        srv, port = _echo_server(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("::1 not configured")
    with srv, socket.create_connection(("::1", port), timeout=5) as c:
        assert c.recv(2) == b"ok"


def test_allows_unix_sockets(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv, socket.socket(socket.AF_UNIX) as c:
        srv.bind(path)
        srv.listen(1)
        c.connect(path)


def test_install_is_idempotent() -> None:
    connect, lookup = socket.socket.connect, socket.getaddrinfo
    guard.install()
    assert (socket.socket.connect, socket.getaddrinfo) == (connect, lookup)


def _run_guarded(code: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(NETGUARD_DIR),
        "PRIVACY_PROXY_NETGUARD": "1",
        "PRIVACY_PROXY_NETGUARD_LOG": str(log),
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=60
    )


def test_subprocess_logs_violations(tmp_path: Path) -> None:
    log = tmp_path / "netguard.log"
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({TEST_NET!r}, 443), timeout=1)\n"
        "except ConnectionRefusedError as e:\n"
        "    print('blocked:', e)\n"
        "try:\n"
        "    import uvloop\n"
        "except ImportError:\n"
        "    print('no uvloop')\n"
    )
    result = _run_guarded(code, log)
    assert result.returncode == 0, result.stderr
    assert f"blocked: network access outside loopback blocked: {TEST_NET}" in result.stdout
    assert "no uvloop" in result.stdout and "NOT installed" not in result.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and TEST_NET in lines[0] and "443" in lines[0]


def test_subprocess_on_loopback_logs_nothing(tmp_path: Path) -> None:
    log = tmp_path / "netguard.log"
    srv, port = _echo_server(socket.AF_INET, "127.0.0.1")
    with srv:
        result = _run_guarded(f"import socket; print(socket.create_connection(('127.0.0.1', {port})).recv(2))", log)
    assert result.returncode == 0, result.stderr
    assert "b'ok'" in result.stdout and not log.exists()


def test_subprocess_without_env_is_unguarded(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(NETGUARD_DIR)}
    env.pop("PRIVACY_PROXY_NETGUARD", None)
    code = "import socket; print(hasattr(socket.socket.connect, '__netguard__'))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
