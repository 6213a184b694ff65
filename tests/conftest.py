"""Shared fixtures: the fake upstream, and real proxy processes started with `privacy-proxy serve`.

Every test runs under a network guard (only loopback), and so does every proxy process started
here (via tests/netguard/sitecustomize.py); a proxy that tried to reach any other host fails its test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_upstream import FakeUpstream  # noqa: E402
from netguard import guard  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NETGUARD_DIR = Path(__file__).parent / "netguard"
AUDIT_KEY = "0f" * 32

guard.install()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--extended", action="store_true", help="run the heavy variants (long fuzzing, big inputs)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--extended"):
        return
    skip = pytest.mark.skip(reason="heavy variant: run with --extended")
    for item in items:
        if "extended" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OnLoopback:
    """A proxy listening on 127.0.0.1:`port`."""

    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"


@dataclass
class ProxyProcess(OnLoopback):
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    policy_path: Path
    log_path: Path
    netguard_log: Path

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit" / "audit.jsonl"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.origin}/healthz", timeout=5)

    def reload(self, policy_text: str, *, expect_ok: bool = True, timeout: float = 30) -> dict:
        before = self.health().json()
        self.policy_path.write_text(policy_text)
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.health().json()
            if expect_ok and state["reloads"] > before["reloads"]:
                return state
            if not expect_ok and state["last_reload_error"]:
                return state
            time.sleep(0.05)
        raise AssertionError(f"reload did not finish; log:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_proxy(policy_text: str, workdir: Path, upstream: str, extra_env: dict[str, str] | None = None,
                log_level: str = "info", extra_args: Sequence[str] = (),
                make: Callable[..., ProxyProcess] = ProxyProcess) -> ProxyProcess:
    """`privacy-proxy serve` in `workdir`, under the network guard; returns once /healthz says 200.
    `make` builds the handle from (process, port, workdir, policy, log, netguard log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    policy_path = workdir / "policy.yaml"
    policy_path.write_text(policy_text)
    port = free_port()
    log_path = workdir / "proxy.log"
    netguard_log = workdir / "netguard.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(NETGUARD_DIR),
        "PRIVACY_PROXY_NETGUARD": "1",
        "PRIVACY_PROXY_NETGUARD_LOG": str(netguard_log),
        "PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY,
        "OPENAI_API_KEY": "sk-upstream-secret",
        **(extra_env or {}),
    }
    command = [
        sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(policy_path),
        "--port", str(port), "--upstream", upstream, "--log-level", log_level, *extra_args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    proxy = make(process, port, workdir, policy_path, log_path, netguard_log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"proxy exited with {process.returncode}:\n{proxy.log()}")
        try:
            if proxy.health().status_code == 200:
                return proxy
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proxy.stop()
    raise AssertionError(f"proxy did not become ready:\n{proxy.log()}")


def finish_proxy(proxy: ProxyProcess) -> None:
    proxy.stop()
    violations = proxy.netguard_log.read_text() if proxy.netguard_log.exists() else ""
    assert not violations, f"the proxy tried to reach the network outside loopback:\n{violations}"


# A test policy: the default's rules plus deny-list names, so PERSON detection is exact and needs no
# NER model (tests of the NER path use the shipped policies).
TEST_POLICY = """
name: test
upstream: {base_url: "http://127.0.0.1:1/v1", timeouts: {connect: 2, read: 10, write: 10, pool: 5}}
server: {max_body_bytes: 262144}
detection:
  ner: none
  entity_thresholds: {PHONE_NUMBER: 0.4}  # as in the default policy: validated numbers need no context word
  recognizers:
    - name: test_names
      entity: PERSON
      deny_list: ["John Smith", "Jane Doe", "Zoë Müller-Lüdenscheidt", "O'Brien"]
    - name: employee_ids
      entity: EMPLOYEE_ID
      patterns: [{name: emp, regex: "\\\\bEMP-\\\\d{6}\\\\b", score: 0.9}]
rules:
  - {id: block-financial, entities: [CREDIT_CARD, IBAN_CODE, US_SSN], action: block}
  - {id: allow-dates, entities: [DATE_TIME, URL, UUID], action: allow}
  - {id: pseudonymize-ids, entities: [PERSON, EMAIL_ADDRESS, PHONE_NUMBER, EMPLOYEE_ID, IP_ADDRESS], action: pseudonymize}
default_action: pseudonymize
"""


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One proxy process per test module, with TEST_POLICY, in front of the fake upstream."""
    running = start_proxy(TEST_POLICY, tmp_path_factory.mktemp("proxy"), upstream_server.base_url)
    yield running
    finish_proxy(running)


class InProcessProxy(OnLoopback):
    """The real app served by uvicorn on loopback in a thread, so a test can inject a fault into a stage."""

    def __init__(self, policy_text: str, workdir: Path, upstream: str) -> None:
        import threading

        import uvicorn

        from privacy_proxy.app import create_app
        from privacy_proxy.state import Overrides, ProxyState

        workdir.mkdir(parents=True, exist_ok=True)
        policy_path = workdir / "policy.yaml"
        policy_path.write_text(policy_text)
        self.audit_path = workdir / "audit.jsonl"
        self.port = free_port()
        self.state = ProxyState(policy_path, Overrides(upstream=upstream, audit_log=str(self.audit_path)))
        config = uvicorn.Config(create_app(self.state), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.origin}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("in-process proxy did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def inprocess_factory(
    upstream_server: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., InProcessProxy]]:
    """Start in-process proxies with a given policy text in front of the fake upstream."""
    monkeypatch.setenv("PRIVACY_PROXY_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-secret")
    monkeypatch.chdir(tmp_path)
    upstream_server.reset()
    started: list[InProcessProxy] = []

    def make(policy_text: str = TEST_POLICY) -> InProcessProxy:
        started.append(InProcessProxy(policy_text, tmp_path / f"proxy{len(started)}", upstream_server.base_url))
        return started[-1]

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def inprocess_proxy(inprocess_factory: Callable[..., InProcessProxy]) -> InProcessProxy:
    return inprocess_factory()
