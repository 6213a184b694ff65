"""An ASGI app served by uvicorn in a daemon thread on loopback: the tests' fake servers share this."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class LoopbackServer:
    """`start()` binds a free port first (connectable before the thread even runs: no port race) and
    returns once uvicorn is serving; `stop()` gives in-flight requests `graceful` seconds."""

    def __init__(self, app: Any, *, name: str, host: str = "127.0.0.1", graceful: float = 2.0, **config: Any) -> None:
        self.app, self.name, self.host, self.graceful, self.config = app, name, host, graceful, config
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
        # without it Nagle + delayed ACK add ~40 ms per response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((self.host, 0))
        # A wide backlog: load tests open hundreds of connections at once, and overflowing it would add
        # the fake's own 1 s SYN retransmits to what they measure.
        sock.listen(4096)
        self.port = sock.getsockname()[1]
        # log_config=None: leave the process's logging alone (a proxy may share it).
        config = uvicorn.Config(self.app, lifespan="off", loop="asyncio", log_config=None,
                                timeout_graceful_shutdown=self.graceful, **self.config)
        server = self._server = _Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        if not server.ready.wait(15):
            self.stop()
            raise RuntimeError(f"{self.name} did not start")
        return self.port

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(self.graceful + 8)
        self._server = self._thread = None
