"""Logging: one request id per HTTP request (a context variable), text or JSON lines.

`RequestIdMiddleware` (plain ASGI, outermost) gives every HTTP request an id, ``req_<24 hex>``; the routes
name their `Exchange` with it (`request_id()`), so the audit record, the response header
``x-privacy-proxy-request-id`` and every log line of the request carry the same id. Worker threads
started with `asyncio.to_thread` and stream tasks inherit it (context variables are copied).

`--log-format json` (or ``server.log_format: json``) writes one JSON object per line:
``{"time", "level", "logger", "message", "request_id"}``. The proxy's messages never hold a value; a
traceback could quote one, so only the exception's type is kept (``"exception": "ValueError"``).
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["REQUEST_ID", "JSONFormatter", "RequestIdMiddleware", "configure_logging", "new_request_id", "request_id"]

REQUEST_ID: ContextVar[str | None] = ContextVar("privacy_proxy_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose per-request chatter the proxy's own line covers.
_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "presidio-analyzer": logging.ERROR}


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def request_id() -> str:
    """The current HTTP request's id, or a fresh one outside a request (tests, tools)."""
    return REQUEST_ID.get() or new_request_id()


class RequestIdMiddleware:
    """Sets `REQUEST_ID` for the duration of each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = REQUEST_ID.set(new_request_id())
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)


class JSONFormatter(logging.Formatter):
    """One JSON object per line; no traceback text (it could quote a value), only the exception type."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


class _RequestIdText(logging.Formatter):
    """The text format, with ``[req_…]`` appended while a request is being served."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = REQUEST_ID.get()
        return f"{line} [{rid}]" if rid else line


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Route every logger (uvicorn's too) through one root handler in the chosen format."""
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else _RequestIdText(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
