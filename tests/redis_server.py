"""A real `redis-server` (the Debian package) on a free loopback port, for the Redis vault tests.

`make test` installs the package when it is missing (`make test-deps`); without it these tests skip,
saying so. The server runs in a temp directory with persistence off; each test module starts its own.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from conftest import free_port

MISSING = "redis-server is not installed: `make test-deps` installs it (Debian: apt-get install redis-server)"


class RedisServer:
    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip(MISSING)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = free_port()
        command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(workdir), "--dbfilename", "dump.rdb",
            "--logfile", str(workdir / "redis.log"), "--daemonize", "no",
        ]
        if password:
            command += ["--requirepass", password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (workdir / "redis.log").read_text(errors="replace") if (workdir / "redis.log").exists() else ""
                raise AssertionError(f"redis-server did not start:\n{log}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """The URL without a password (what a policy's vault.redis_url may hold)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def secret_url(self) -> str:
        """The URL with the password (what PRIVACY_PROXY_REDIS_URL holds)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0" if self.password else self.url

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
