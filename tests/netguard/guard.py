"""Fail any network access outside loopback, for tests.

``install()`` patches the Python-level socket entry points that every pure-Python
client ends up in (``socket.socket.connect``/``connect_ex``/``sendto``,
``socket.getaddrinfo`` and the ``gethostby*`` lookups; ``socket.create_connection``
and asyncio's selector loop go through these).  Code that connects from C
(e.g. uvloop/libuv) would bypass it, so ``install()`` also makes ``import uvloop``
fail, which sends uvicorn's ``loop="auto"`` to the plain asyncio loop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

__all__ = ["NetworkBlocked", "Violation", "violations", "listeners", "install", "uninstall", "capture"]


# State lives on the socket module, so a second copy of this file (say, loaded by
# sitecustomize under another name, then imported normally) shares it.
_shared: dict[str, Any] = socket.__dict__.setdefault("_privacy_proxy_netguard", {})


class NetworkBlocked(ConnectionRefusedError):
    """Raised instead of touching the network; an OSError, so clients wrap it as a connect error."""


NetworkBlocked = _shared.setdefault("NetworkBlocked", NetworkBlocked)  # type: ignore[misc]


class Violation(NamedTuple):
    op: str  # "connect", "connect_ex", "sendto", "getaddrinfo", "gethostbyname", ...
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.op} {self.host}" + ("" if self.port is None else f" port {self.port}")


#: Every blocked attempt, in order (shared by all threads of the process).
violations: list[Violation] = _shared.setdefault("violations", [])
#: Called with each new Violation (e.g. to log it to a file); exceptions are swallowed.
listeners: list[Callable[[Violation], None]] = _shared.setdefault("listeners", [])

_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
_MARK = "__netguard__"
_originals: dict[tuple[Any, str], Any] = _shared.setdefault("originals", {})


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip


def _is_loopback(host: object, *, lookup: bool = False) -> bool:
    """Loopback address or name; for lookups also the bind-anywhere forms (None, "", 0.0.0.0, ::)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "":
        return lookup  # getaddrinfo(None, port) answers loopback/wildcard, no DNS involved
    if not isinstance(host, str):
        return False
    if host.lower() in _LOCAL_NAMES:
        return True
    ip = _ip(host)
    return ip is not None and (ip.is_loopback or (lookup and ip.is_unspecified))


def _block(op: str, host: object, port: object = None) -> None:
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    violation = Violation(op, text, port if isinstance(port, int) else None)
    violations.append(violation)
    for listener in list(listeners):
        try:
            listener(violation)
        except Exception:  # a broken logger must not change what the code under test sees
            pass
    raise NetworkBlocked(f"network access outside loopback blocked: {text}")


def _check_address(op: str, sock: socket.socket, address: Any) -> None:
    family = sock.family
    if hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
        return
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address:
        if not _is_loopback(address[0]):
            _block(op, address[0], address[1] if len(address) > 1 else None)
        return
    _block(op, address)  # any other family (netlink, packet, ...) is not loopback TCP/UDP


def _wrap_method(name: str) -> Callable[..., Any]:
    original = getattr(socket.socket, name)

    min_args = 2 if name == "sendto" else 1  # sendto(data[, flags], address)

    def guarded(self: socket.socket, *args: Any) -> Any:
        if len(args) >= min_args:
            _check_address(name, self, args[-1])  # the address is the last positional argument
        return original(self, *args)

    guarded.__name__ = name
    setattr(guarded, _MARK, original)
    return guarded


def _wrap_lookup(name: str) -> Callable[..., Any]:
    original = getattr(socket, name)

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host, lookup=True):
            port = args[0] if args else kwargs.get("port")
            _block(name, host, port)
        return original(host, *args, **kwargs)

    guarded.__name__ = name
    setattr(guarded, _MARK, original)
    return guarded


def install(*, block_uvloop: bool = True) -> None:
    """Patch the socket module (idempotent, also across copies of this module)."""
    for name in ("connect", "connect_ex", "sendto"):
        if not hasattr(getattr(socket.socket, name), _MARK):
            _originals[(socket.socket, name)] = getattr(socket.socket, name)
            setattr(socket.socket, name, _wrap_method(name))
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        if not hasattr(getattr(socket, name), _MARK):
            _originals[(socket, name)] = getattr(socket, name)
            setattr(socket, name, _wrap_lookup(name))
    if block_uvloop and "uvloop" not in sys.modules:
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # makes `import uvloop` raise ImportError


def uninstall() -> None:
    """Restore the original functions (the uvloop block stays)."""
    while _originals:
        (owner, name), original = _originals.popitem()
        setattr(owner, name, original)


@contextlib.contextmanager
def capture() -> Iterator[list[Violation]]:
    """Collect the violations made inside the block and take them out of ``violations``.

    For tests that provoke violations on purpose without tripping a
    "no violations" check elsewhere.
    """
    start = len(violations)
    caught: list[Violation] = []
    try:
        yield caught
    finally:
        caught.extend(violations[start:])
        del violations[start:]
