"""Reading a client's request at the HTTP edge: body limits and upload time, JSON parsing and shape checks,
and the OpenAI-shaped error response. Every refusal is a `BadRequest` naming no value."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from privacy_proxy.errors import BadRequest, ProxyError

# Past this many bytes an oversized body is no longer drained: the 413 goes out and the connection closes.
DRAIN_LIMIT = 64 * 1024 * 1024
UPSTREAM_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def error_response(exc: ProxyError, request_id: str | None = None) -> JSONResponse:
    headers = exc.headers()
    if request_id:
        headers["x-privacy-proxy-request-id"] = request_id
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise BadRequest(f"request body too large (limit {limit} bytes)", status=413, code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break
    if size > limit:
        # Drained, not reset: the client is still sending when we answer, and must read the 413.
        raise BadRequest(f"request body too large (limit {limit} bytes)", status=413, code="request_too_large")
    return b"".join(chunks)


async def read_body_in_time(request: Request, server: Any) -> bytes:
    try:
        return await asyncio.wait_for(read_body(request, server.max_body_bytes), timeout=server.body_timeout)
    except TimeoutError:
        raise BadRequest(
            f"the request body did not arrive within {server.body_timeout:g} s", status=408, code="request_timeout"
        ) from None


def check_shape(body: Any, server: Any) -> None:
    """Refuse bodies nested deeper than `max_json_depth` or with more than `max_messages` entries."""
    depth, level = 0, [body]
    while level:
        depth += 1
        if depth > server.max_json_depth:
            raise BadRequest(f"the request body is nested deeper than {server.max_json_depth} levels",
                             code="too_deeply_nested")
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node) if isinstance(child, (dict, list))]
    if isinstance(body, dict):
        for field in ("messages", "input", "prompt"):
            entries = body.get(field)
            if isinstance(entries, list) and len(entries) > server.max_messages:
                raise BadRequest(f"{field} has {len(entries)} entries; the limit is {server.max_messages}",
                                 param=field, code="too_many_messages")


def safe_request_id(value: str | None) -> str | None:
    """The upstream's request id for the audit record, if it looks like an id (never free text)."""
    return value if value and UPSTREAM_REQUEST_ID.fullmatch(value) else None


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None
