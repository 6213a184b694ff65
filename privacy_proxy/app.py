"""HTTP edge: FastAPI routes speaking the OpenAI API. Everything else lives behind the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from privacy_proxy.errors import (
    AuditFailure,
    BadRequest,
    NotReady,
    ProxyError,
    RestoreError,
    UpstreamError,
    fault_kind,
)
from privacy_proxy.openai.chat import AnswerRestorer
from privacy_proxy.pipeline import Exchange, prepare_chat, serialize
from privacy_proxy.runtime import Runtime
from privacy_proxy.state import ProxyState
from privacy_proxy.streaming import ClosingStreamingResponse, relay_chat_stream
from privacy_proxy.upstream import relay_headers

logger = logging.getLogger("privacy_proxy")

# Past this many bytes an oversized body is no longer drained: the 413 goes out and the connection closes.
DRAIN_LIMIT = 64 * 1024 * 1024
# Uncached text above this size is scanned in a worker thread so other requests keep flowing.
INLINE_SCAN_CHARS = 4096
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


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


def safe_request_id(value: str | None) -> str | None:
    """The upstream's request id for the audit record, if it looks like an id (never free text)."""
    return value if value and REQUEST_ID.fullmatch(value) else None


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


def _text_size(body: Any) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    return sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict)) if isinstance(messages, list) else 0


def create_app(state: ProxyState) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.open()
        build = asyncio.create_task(build_or_stop())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(state.reload()))
        try:
            yield
        finally:
            build.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await state.stop()

    async def build_or_stop() -> None:
        """Listen at once (so /healthz can say 503 while models load); a failed build stops the server."""
        try:
            await state.build()
        except ProxyError:
            logger.error("start-up failed: %s", state.fatal)
            if threading.current_thread() is threading.main_thread():  # we own the process (serve)
                signal.raise_signal(signal.SIGTERM)

    app = FastAPI(title="privacy-proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.proxy = state

    def runtime_or_503() -> Runtime:
        if state.runtime is None:
            raise NotReady("the proxy is still loading its policy and detectors; retry shortly")
        return state.runtime

    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected %s on %s", type(exc).__name__, request.url.path)
        return error_response(ProxyError("internal error in the proxy; nothing was forwarded", code="internal_error"))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        runtime = state.runtime
        body = {
            "status": "ok" if runtime else ("failed" if state.fatal else "starting"),
            "error": state.fatal,
            "policy": state.policy.name,
            "policy_sha256": state.loaded.sha256,
            "reloads": state.reloads,
            "last_reload_error": state.last_reload_error,
            # The client in use: upstream settings change at the next start, not on reload.
            "upstream": {
                "base_url": state.upstream.base_url if state.upstream else state.policy.upstream.base_url,
                "checked": "/healthz/upstream",
            },
        }
        return JSONResponse(body, status_code=200 if runtime else 503)

    @app.get("/healthz/upstream")
    async def healthz_upstream() -> JSONResponse:
        """Whether the upstream answers; informational, never part of readiness."""
        upstream = state.upstream
        if upstream is None:
            return JSONResponse({"reachable": False, "error": "not started"})
        try:
            response = await upstream.send("GET", "/models", content=None, headers=upstream.request_headers({}, json_body=False))
            await response.aclose()
            return JSONResponse({"reachable": True, "status": response.status_code})
        except UpstreamError as exc:
            return JSONResponse({"reachable": False, "error": exc.code})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        runtime = runtime_or_503()
        exchange = Exchange(request_id=f"req_{uuid.uuid4().hex[:24]}", route="/v1/chat/completions", runtime=runtime)
        try:
            try:
                body = parse_json(await read_body(request, runtime.policy.server.max_body_bytes))
                if _text_size(body) > INLINE_SCAN_CHARS:
                    outbound = await asyncio.to_thread(prepare_chat, exchange, body)
                else:
                    outbound = prepare_chat(exchange, body)
            except BadRequest as exc:
                exchange.decision, exchange.reason = "reject", exc.code
                raise
            except ProxyError as exc:
                exchange.block(exc)
                raise
            return await forward_chat(request, exchange, outbound)
        except Exception as exc:
            # Every failure on this route is answered and audited here, value-free; nothing generic
            # (with a traceback that could quote a value) reaches the server's log.
            if not isinstance(exc, ProxyError):
                logger.error("unexpected %s in request %s", type(exc).__name__, exchange.request_id)
                exc = ProxyError("internal error in the proxy; the request failed closed", code="internal_error")
                exchange.block(exc)
            elif exchange.decision == "forward":
                exchange.decision, exchange.fault = "error", fault_kind(exc)
            if not isinstance(exc, AuditFailure):
                state.record(exchange)
            return error_response(exc, exchange.request_id)

    async def forward_chat(request: Request, exchange: Exchange, outbound: bytes) -> Response:
        """Send the rewritten request; restore and return the answer. Raises ProxyError on faults."""
        assert state.upstream is not None
        upstream = state.upstream
        response = await upstream.send(
            "POST", "/chat/completions", content=outbound, headers=upstream.request_headers(request.headers)
        )
        exchange.upstream_status = response.status_code
        exchange.upstream_request_id = safe_request_id(response.headers.get("x-request-id"))
        headers = relay_headers(response.headers)
        headers["x-privacy-proxy-request-id"] = exchange.request_id
        answers = AnswerRestorer(exchange.mapping.restorable)
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if exchange.stream and response.status_code < 400 and is_sse:
            headers.update(STREAM_HEADERS)
            return ClosingStreamingResponse(
                relay_chat_stream(state, exchange, response, answers),
                status_code=response.status_code,
                headers=headers,
                media_type="text/event-stream",
            )
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the upstream connection broke while sending the answer ({type(exc).__name__})",
                code="upstream_stream_broken",
            ) from exc
        finally:
            await response.aclose()
        if response.status_code >= 400:
            # Relay the upstream's status and error body (401, 429 + retry-after, 5xx) as they are.
            state.record(exchange)
            return Response(raw, status_code=response.status_code, headers=headers, media_type="application/json")
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            raise UpstreamError("the upstream answered with invalid JSON", code="upstream_invalid_json") from None
        try:
            answers.completion(payload)
        except Exception as exc:
            raise RestoreError("restoring the answer failed; it was withheld") from exc
        state.record(exchange)
        return Response(serialize(payload), status_code=response.status_code, headers=headers, media_type="application/json")

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        return await relay_get(request, "/models")

    @app.get("/v1/models/{model_id:path}")
    async def get_model(request: Request, model_id: str) -> Response:
        return await relay_get(request, f"/models/{model_id}")

    async def relay_get(request: Request, path: str) -> Response:
        runtime_or_503()
        assert state.upstream is not None
        upstream = state.upstream
        response = await upstream.send(
            "GET", path, content=None, headers=upstream.request_headers(request.headers, json_body=False)
        )
        try:
            raw = await response.aread()
        finally:
            await response.aclose()
        return Response(raw, status_code=response.status_code, headers=relay_headers(response.headers))

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def other_route(request: Request, path: str) -> Response:
        runtime = runtime_or_503()
        route = f"/v1/{path}"
        if route not in runtime.policy.server.passthrough_routes:
            raise BadRequest(
                f"{request.method} {route} is not supported by privacy-proxy: its content would leave unscanned. "
                "A policy can let it through unscanned with server.passthrough_routes.",
                status=404,
                code="route_not_supported",
            )
        return await passthrough(request, runtime, route)

    async def passthrough(request: Request, runtime: Runtime, route: str) -> Response:
        assert state.upstream is not None
        exchange = Exchange(request_id=f"req_{uuid.uuid4().hex[:24]}", route=route, runtime=runtime)
        exchange.decision, exchange.reason = "passthrough", "policy_passthrough_route"
        raw = await read_body(request, runtime.policy.server.max_body_bytes)
        exchange.outbound = raw
        upstream = state.upstream
        headers = upstream.request_headers(request.headers, json_body=False)
        if "content-type" in request.headers:
            headers["content-type"] = request.headers["content-type"]
        response = await upstream.send(
            request.method, route.removeprefix("/v1"), content=raw or None, headers=headers, query=request.url.query
        )
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        exchange.upstream_status = response.status_code
        state.record(exchange)
        return Response(body, status_code=response.status_code, headers=relay_headers(response.headers))

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def not_found(path: str) -> Response:
        raise BadRequest(f"unknown route /{path}", status=404, code="unknown_route")

    return app

