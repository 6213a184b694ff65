"""HTTP edge: FastAPI routes speaking the OpenAI API. Everything else lives behind the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from privacy_proxy import metrics
from privacy_proxy.access import install_access
from privacy_proxy.collaborate import Collaborator
from privacy_proxy.dashboard import install_dashboard
from privacy_proxy.errors import (
    AuditFailure,
    BadRequest,
    NotReady,
    ProxyError,
    RestoreError,
    UpstreamError,
    fault_kind,
)
from privacy_proxy.http_input import check_shape, error_response, parse_json, read_body_in_time, safe_request_id
from privacy_proxy.logs import RequestIdMiddleware, request_id
from privacy_proxy.openai import responses
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.pipeline import Exchange, Prepared, prepare_plan, serialize
from privacy_proxy.routes import ROUTES, Route
from privacy_proxy.runtime import Runtime
from privacy_proxy.state import ProxyState
from privacy_proxy.streaming import ClosingStreamingResponse, relay_stream
from privacy_proxy.upstream import read_all, relay_headers, upstream_json

logger = logging.getLogger("privacy_proxy")

# Bodies above this size are parsed and scanned in a worker thread so other requests keep flowing.
INLINE_SCAN_BYTES = 4096
RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # goes into the upstream URL path: no dots, no slashes
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


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
    install_access(app, state)  # client/admin API keys and /admin routes (privacy_proxy/access.py)
    install_dashboard(app, state)  # GET /admin: the audit dashboard (privacy_proxy/dashboard.py)
    app.add_middleware(RequestIdMiddleware)  # outermost: every request (and its log lines) gets its id

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text format; who may read it is decided in access.py (server.metrics)."""
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

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

    def serve_route(route: Route) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await scanned(request, route)

        handler.__name__ = "post_" + route.path.strip("/").replace("/", "_")
        return handler

    async def scanned(request: Request, route: Route) -> Response:
        """One handler for every scanned route: read, parse, scan, forward, restore, audit."""
        runtime = runtime_or_503()
        exchange = Exchange(request_id=request_id(), route=route.path, runtime=runtime)

        async def serve() -> Response:
            try:
                raw = await read_body_in_time(request, runtime.policy.server)
                if len(raw) > INLINE_SCAN_BYTES:
                    parsed, prepared = await asyncio.to_thread(prepare_request, route, exchange, raw)
                else:
                    parsed, prepared = prepare_request(route, exchange, raw)
            except BadRequest as exc:
                exchange.decision, exchange.reason = "reject", exc.code
                raise
            except ProxyError as exc:
                exchange.block(exc)
                raise
            return await dispatch(request, route, exchange, parsed, prepared)

        return await answered(exchange, serve)

    collaborator = Collaborator(state)

    async def dispatch(
        request: Request, route: Route, exchange: Exchange, parsed: TextRequest, prepared: Prepared
    ) -> Response:
        """The strategy's path (strategies.py, collaborate.py): forward, or the device's part around it."""
        plan = prepared.plan
        if plan is None or plan.strategy == "forward":
            return await forward(request, route, exchange, parsed, prepared.outbound)
        if plan.strategy == "local":
            return await collaborator.local(exchange, parsed)
        outbound = prepared.outbound
        if plan.rewrite_segment is not None:
            try:
                outbound = await collaborator.rewrite(exchange, parsed, prepared)
            except ProxyError as exc:
                exchange.block(exc)
                raise
        if plan.local_after:
            return await collaborator.cloud_then_local(request, route, exchange, parsed, Prepared(outbound, plan))
        return await forward(request, route, exchange, parsed, outbound)

    async def answered(exchange: Exchange, serve: Callable[[], Awaitable[Response]]) -> Response:
        """Run a request's work; every failure is answered in the OpenAI shape and audited, value-free.

        Nothing generic (a traceback could quote a value) reaches the server's log."""
        try:
            return await serve()
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                logger.error("unexpected %s in request %s", type(exc).__name__, exchange.request_id)
                exc = ProxyError("internal error in the proxy; the request failed closed", code="internal_error")
                exchange.block(exc)
            elif exchange.decision == "forward":
                exchange.decision, exchange.fault = "error", fault_kind(exc)
            if not isinstance(exc, AuditFailure):
                state.record(exchange)
            response = error_response(exc, exchange.request_id)
            if exchange.strategy is not None:
                response.headers.update(exchange.strategy_headers())
            return response

    def prepare_request(route: Route, exchange: Exchange, raw: bytes) -> tuple[TextRequest, Prepared]:
        """Parse, scan and plan (in a worker thread for large bodies); the request and what to send."""
        with exchange.stage("parse"):
            body = parse_json(raw)
            check_shape(body, exchange.runtime.policy.server)
            parsed = route.parse(body, exchange.runtime.policy)
        exchange.model, exchange.stream = parsed.model, parsed.stream
        parsed.load_prior(state.vault)
        return parsed, prepare_plan(exchange, parsed)

    async def forward(
        request: Request, route: Route, exchange: Exchange, parsed: TextRequest, outbound: bytes
    ) -> Response:
        """Send the rewritten request; restore and return the answer. Raises ProxyError on faults."""
        assert state.upstream is not None
        upstream = state.upstream
        sent = time.perf_counter()
        try:
            response = await upstream.send(
                "POST", route.upstream_path, content=outbound, headers=route.upstream_headers(request.headers, upstream)
            )
        finally:
            exchange.add_time("upstream", sent, time.perf_counter())  # until the answer's headers
        exchange.upstream_status = response.status_code
        exchange.upstream_request_id = safe_request_id(response.headers.get("x-request-id"))
        headers = relay_headers(response.headers)
        headers["x-privacy-proxy-request-id"] = exchange.request_id
        headers.update(exchange.strategy_headers())
        # Earlier turns' tokens (server-side conversations) may be quoted too.
        mapping = {**parsed.prior, **exchange.mapping.restorable}
        try:
            answers = route.answers(parsed, mapping, state.vault) if route.answers else None
        except BaseException:
            await response.aclose()  # the connection and its in-flight slot go back before the error does
            raise
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if answers is not None and route.stream and exchange.stream and response.status_code < 400 and is_sse:
            headers.update(STREAM_HEADERS)
            return ClosingStreamingResponse(
                relay_stream(state, exchange, response, route.stream(answers)),
                status_code=response.status_code,
                headers=headers,
                media_type="text/event-stream",
            )
        reading = time.perf_counter()
        try:
            raw = await read_all(response)
        finally:
            exchange.add_time("upstream", reading, time.perf_counter())  # ... and its body
        if response.status_code >= 400 or answers is None:
            # Errors (401, 429 + retry-after, 5xx) and text-free answers (vectors) are relayed as they are.
            state.record(exchange)
            media_type = response.headers.get("content-type", "application/json")
            return Response(raw, status_code=response.status_code, headers=headers, media_type=media_type)
        payload = upstream_json(raw)
        try:
            with exchange.stage("restore"):
                answers.completion(payload)
        except ProxyError:
            raise
        except Exception as exc:
            raise RestoreError("restoring the answer failed; it was withheld") from exc
        state.record(exchange)
        return Response(serialize(payload), status_code=response.status_code, headers=headers, media_type="application/json")

    for route in ROUTES:
        app.add_api_route(route.path, serve_route(route), methods=["POST"])

    @app.get("/v1/responses/{response_id}")
    @app.delete("/v1/responses/{response_id}")
    async def stored_response(request: Request, response_id: str) -> Response:
        return await stored(request, response_id, "")

    @app.get("/v1/responses/{response_id}/input_items")
    async def stored_input_items(request: Request, response_id: str) -> Response:
        return await stored(request, response_id, "/input_items")

    async def stored(request: Request, response_id: str, suffix: str) -> Response:
        """A response stored upstream, fetched (restored with the mapping its turn saved) or deleted
        (its mapping deleted too). Nothing is sent but the id, so nothing is scanned."""
        runtime = runtime_or_503()
        route = f"/v1/responses/{{id}}{suffix}"  # the audit names the route, never the id
        exchange = Exchange(request_id=request_id(), route=route, runtime=runtime)

        async def serve() -> Response:
            if not RESPONSE_ID.fullmatch(response_id):
                exchange.decision, exchange.reason = "reject", "invalid_request"
                raise BadRequest("not a response id", param="response_id")
            if request.method == "GET" and request.query_params.get("stream", "").lower() in ("true", "1"):
                exchange.decision, exchange.reason = "reject", "stream_resume_not_supported"
                raise BadRequest("resuming a stored response as a stream is not supported by privacy-proxy; "
                                 "fetch it without stream", param="stream", code="stream_resume_not_supported")
            mapping = responses.stored_mapping(state.vault, response_id) or {}
            assert state.upstream is not None
            upstream = state.upstream
            response = await upstream.send(
                request.method, f"/responses/{response_id}{suffix}", content=None,
                headers=upstream.request_headers(request.headers, json_body=False), query=request.url.query,
            )
            raw = await read_all(response)
            exchange.upstream_status = response.status_code
            headers = relay_headers(response.headers)
            headers["x-privacy-proxy-request-id"] = exchange.request_id
            if request.method == "DELETE" and response.status_code < 300:
                responses.forget(state.vault, response_id)
            if response.status_code >= 400 or request.method == "DELETE" or not mapping:
                state.record(exchange)
                return Response(raw, status_code=response.status_code, headers=headers,
                                media_type=response.headers.get("content-type", "application/json"))
            payload = upstream_json(raw)
            answers = responses.ResponsesAnswers(mapping)
            try:
                if suffix:  # a list of input items
                    items = payload.get("data") if isinstance(payload, dict) else None
                    for item in items if isinstance(items, list) else []:
                        answers.item(item)
                else:
                    answers.response(payload)
            except Exception as exc:
                raise RestoreError("restoring the stored response failed; it was withheld") from exc
            state.record(exchange)
            return Response(serialize(payload), status_code=response.status_code, headers=headers,
                            media_type="application/json")

        return await answered(exchange, serve)

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
        raw = await read_all(response)
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
        exchange = Exchange(request_id=request_id(), route=route, runtime=runtime)
        exchange.decision, exchange.reason = "passthrough", "policy_passthrough_route"
        raw = await read_body_in_time(request, runtime.policy.server)
        exchange.outbound = raw
        upstream = state.upstream
        headers = upstream.request_headers(request.headers, json_body=False)
        if "content-type" in request.headers:
            headers["content-type"] = request.headers["content-type"]
        response = await upstream.send(
            request.method, route.removeprefix("/v1"), content=raw or None, headers=headers, query=request.url.query
        )
        body = await read_all(response)
        exchange.upstream_status = response.status_code
        state.record(exchange)
        return Response(body, status_code=response.status_code, headers=relay_headers(response.headers))

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def not_found(path: str) -> Response:
        raise BadRequest(f"unknown route /{path}", status=404, code="unknown_route")

    return app

