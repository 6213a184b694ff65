"""The device side of the strategies (issue 4): the local SLM's steps around the cloud call, for chat.

    rewrite(...)      abstract + abstraction.use_slm: the SLM rewrites the last user message (PAPILLON-style);
                      the rewrite is re-detected and guarded (strategies.abstract_rewrite); on any failure the
                      rules' abstraction leaves instead (fallback `abstract:<reason>`); both failed → block.
    local(...)        strategy local: the SLM answers in the chat completion shape, whole or streamed.
    cloud_then_local  split with SLM composition or re-personalization, abstract with re-personalization: the
                      cloud is asked without a stream, then the device writes the final answer — composed from
                      the private context and the cloud's answer, or the cloud's answer adapted with the private
                      details — streamed as `chat.completion.chunk` events as the SLM produces them when the client
                      streams. An SLM that fails before its first token falls back to the templated answer
                      (placeholders restored; fallback `compose:<reason>` / `repersonalize:<reason>`); one that
                      fails mid-stream ends the stream with an error event.

Everything sent to the SLM stays on this machine (the SLM is loopback or in-process). What reaches the
client is the client's own data; the audit gets timings and value-free names only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from privacy_proxy import strategies
from privacy_proxy.errors import (
    AuditFailure,
    PolicyViolation,
    ProxyError,
    RestoreError,
    UpstreamError,
    fault_kind,
)
from privacy_proxy.openai.chat import AnswerRestorer
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.pipeline import Exchange, Prepared, guard, serialize
from privacy_proxy.slm import SLMError
from privacy_proxy.state import ProxyState
from privacy_proxy.streaming import DONE, ClosingStreamingResponse, error_event
from privacy_proxy.upstream import read_all, relay_headers, upstream_json
from sanitizers import prompts
from sanitizers.rewrite import aminimal_disclosure
from sanitizers.types import Action

logger = logging.getLogger("privacy_proxy.collaborate")

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
Messages = list[dict[str, str]]


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def plain_messages(messages: Any) -> Messages:
    """The client's chat messages as text only (parts joined), for the local model."""
    out = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(str(part.get("text") or part.get("refusal") or "") for part in content
                                if isinstance(part, dict) and part.get("type") in ("text", "input_text", "refusal"))
        out.append({"role": str(message.get("role", "user")), "content": content if isinstance(content, str) else ""})
    return out


def _protected_details(request: TextRequest, plan: strategies.Plan) -> list[str]:
    """"TYPE: value" for each protected value of the user's messages — for the local model only."""
    details: dict[str, None] = {}
    for index, spans in enumerate(plan.result.spans):
        if request.roles[index] != "user":
            continue
        text = request.segments[index].text
        for start, end, decision in spans:
            if decision.action != Action.ALLOW:
                details[f"{decision.detection.entity}: {text[start:end]}"] = None
    return list(details)


class Collaborator:
    def __init__(self, state: ProxyState) -> None:
        self.state = state

    # -- abstract: the SLM's minimal-disclosure rewrite ------------------------------------------
    async def rewrite(self, exchange: Exchange, parsed: TextRequest, prepared: Prepared) -> bytes:
        plan = prepared.plan
        assert plan is not None and plan.rewrite_segment is not None
        runtime, index = exchange.runtime, plan.rewrite_segment
        text, detections = strategies.rewrite_targets(parsed, plan)
        started = time.perf_counter()
        try:
            outcome = await aminimal_disclosure(text, detections, runtime.abstractor, agenerate=runtime.slm.agenerate)
        finally:
            exchange.add_slm_time(time.perf_counter() - started)
        why = outcome.fallback
        if outcome.source == "slm" and outcome.text is not None:
            try:
                safe, why = await asyncio.to_thread(strategies.abstract_rewrite, runtime, plan, outcome.text)
            except Exception as exc:  # noqa: BLE001 - re-detecting the rewrite failed: the rules' version leaves
                safe, why = None, "redetection_failed"
                logger.error("re-detecting the rewrite failed in %s: %s", exchange.request_id, type(exc).__name__)
            if safe is not None:
                texts = list(plan.result.texts)
                texts[index] = safe
                body = parsed.outbound(texts)
                if plan.local_after:
                    body["stream"] = False
                    body.pop("stream_options", None)
                try:
                    guard(exchange, body)
                except PolicyViolation:
                    why = "leak"
                else:
                    exchange.rewrite = "slm"
                    exchange.outbound = serialize(body)
                    return exchange.outbound
        exchange.fallbacks.append(f"abstract:{why or 'slm_error'}")
        if not prepared.outbound:
            raise PolicyViolation("neither the local model's rewrite nor the abstraction rules produced a request "
                                  "safe to send; it was not forwarded", reason="abstraction_failed")
        exchange.outbound, exchange.leak_guard = prepared.outbound, "pass"
        return prepared.outbound

    # -- local: the SLM answers ------------------------------------------------------------------
    async def local(self, exchange: Exchange, parsed: TextRequest) -> Response:
        messages = prompts.local_answer_messages(plain_messages(parsed.body.get("messages")))
        base = {"id": f"chatcmpl-local-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": parsed.model}
        exchange.answer = "local"
        try:
            return await self.answer(exchange, parsed, messages, base, fallback=None, stage="local")
        except ProxyError as exc:
            exchange.decision, exchange.fault = "error", fault_kind(exc)
            raise

    # -- the cloud first, then the device ---------------------------------------------------------
    async def cloud_then_local(self, request: Request, route: Any, exchange: Exchange, parsed: TextRequest,
                               prepared: Prepared) -> Response:
        plan = prepared.plan
        assert plan is not None
        bodies = ([serialize(body) for body in plan.split_bodies] if plan.split is not None else [prepared.outbound])
        exchange.outbound = b"".join(bodies)
        payloads = []
        for body in bodies:
            got = await self._cloud(request, route, exchange, body)
            if isinstance(got, Response):
                return got  # the upstream's error, relayed
            payloads.append(got)
        first = payloads[0]
        answers = [self._content(payload) for payload in payloads]
        mapping = {**parsed.prior, **exchange.mapping.restorable}
        try:
            AnswerRestorer(mapping).completion(first)
        except Exception as exc:
            raise RestoreError("restoring the answer failed; it was withheld") from exc
        if any(answer is None for answer in answers):  # a tool call or a refusal: nothing to compose
            exchange.answer = "restored"
            self.state.record(exchange)
            return self._json(exchange, first)
        texts = [answer or "" for answer in answers]
        original = strategies.last_user_text(parsed)
        if plan.split is not None:
            template = plan.split.compose(texts)
            if plan.compose_with_slm:
                messages, stage, exchange.answer = plan.split.composition_messages(texts), "compose", "composed"
            else:
                messages, stage, exchange.answer = (prompts.repersonalize_messages(
                    original, template, plan.split.private_context), "repersonalize", "repersonalized")
        else:
            template = AnswerRestorer(mapping).text.restore(texts[0])
            details = _protected_details(parsed, plan)
            messages, stage, exchange.answer = (prompts.repersonalize_messages(original, template, details),
                                                "repersonalize", "repersonalized")
        base = {k: first[k] for k in ("id", "created", "model", "system_fingerprint") if k in first}
        return await self.answer(exchange, parsed, messages, base, fallback=template, stage=stage, payload=first)

    async def _cloud(self, request: Request, route: Any, exchange: Exchange, body: bytes) -> dict[str, Any] | Response:
        upstream = self.state.upstream
        assert upstream is not None
        with exchange.stage("upstream"):
            response = await upstream.send("POST", route.upstream_path, content=body,
                                           headers=route.upstream_headers(request.headers, upstream))
            raw = await read_all(response)
        exchange.upstream_status = response.status_code
        if response.status_code >= 400:
            self.state.record(exchange)
            headers = relay_headers(response.headers)
            headers.update(self._headers(exchange))
            return Response(raw, status_code=response.status_code, headers=headers,
                            media_type=response.headers.get("content-type", "application/json"))
        payload = upstream_json(raw)
        if not isinstance(payload, dict):
            raise UpstreamError("the upstream answered with invalid JSON", code="upstream_invalid_json")
        return payload

    @staticmethod
    def _content(payload: dict[str, Any]) -> str | None:
        choices = payload.get("choices")
        message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) and not message.get("tool_calls") else None

    # -- the answer written on the device ---------------------------------------------------------
    async def answer(self, exchange: Exchange, parsed: TextRequest, messages: Messages, base: dict[str, Any], *,
                     fallback: str | None, stage: str, payload: dict[str, Any] | None = None) -> Response:
        """The SLM's answer to `messages`, whole or streamed; before its first token, a failure falls back to
        `fallback` (recorded as `stage:<code>`) or, without one, is the request's error."""
        slm = exchange.runtime.slm
        if not exchange.stream:  # what the client asked (the body sent upstream may say otherwise)
            started = time.perf_counter()
            try:
                text = await slm.agenerate(messages)
                if not text.strip():
                    raise SLMError("the local model produced no answer")
            except Exception as exc:  # noqa: BLE001 - any SLM fault: the fallback, or the request's error
                text = self._fall_back(exchange, exc, fallback, stage)
            finally:
                exchange.add_slm_time(time.perf_counter() - started)
            body = payload or {**base, "object": "chat.completion"}
            body["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
            body.setdefault("object", "chat.completion")
            self.state.record(exchange)
            return self._json(exchange, body)
        pieces = slm.astream(messages)
        started = time.perf_counter()
        first = ""
        try:
            async for piece in pieces:
                if piece:
                    first = piece
                    break
            if not first:
                raise SLMError("the local model produced no answer")
        except Exception as exc:  # noqa: BLE001 - any SLM fault before the first token: the fallback
            exchange.add_slm_time(time.perf_counter() - started)
            await pieces.aclose()
            first, pieces = self._fall_back(exchange, exc, fallback, stage), _nothing()
            started = None  # type: ignore[assignment]
        base = {**base, "object": "chat.completion.chunk"}
        headers = {**self._headers(exchange), **STREAM_HEADERS}
        return ClosingStreamingResponse(self._events(exchange, base, first, pieces, started), headers=headers,
                                        media_type="text/event-stream")

    def _fall_back(self, exchange: Exchange, exc: BaseException, fallback: str | None, stage: str) -> str:
        code = fault_kind(exc) if isinstance(exc, ProxyError) else "slm_error"
        if fallback is None:
            if isinstance(exc, ProxyError):
                raise exc
            logger.error("local model failed in request %s: %s", exchange.request_id, type(exc).__name__)
            raise SLMError("the local model failed") from exc
        exchange.fallbacks.append(f"{stage}:{code}")
        exchange.answer = "restored"
        return fallback

    async def _events(self, exchange: Exchange, base: dict[str, Any], first: str, pieces: AsyncIterator[str],
                      started: float | None) -> AsyncIterator[bytes]:
        recorded = False

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        try:
            yield chunk({"role": "assistant", "content": first})
            async for piece in pieces:
                if piece:
                    yield chunk({"content": piece})
            if started is not None:
                exchange.add_slm_time(time.perf_counter() - started)
                started = None
            self.state.record(exchange)
            recorded = True
            yield chunk({}, "stop") + DONE
        except Exception as exc:  # noqa: BLE001 - ends the stream with one error event (fail closed)
            if started is not None:
                exchange.add_slm_time(time.perf_counter() - started)
            if not isinstance(exc, ProxyError):
                logger.error("local answer stream failed for %s: %s", exchange.request_id, type(exc).__name__)
                exc = SLMError("the local model failed while streaming the answer")
            exchange.fault = fault_kind(exc)
            if not isinstance(exc, AuditFailure):
                try:
                    self.state.record(exchange)
                except AuditFailure as audit_exc:
                    exc = audit_exc
            recorded = True
            yield error_event(exc)
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
            if not recorded:
                exchange.client_disconnected = True
                try:
                    self.state.record(exchange)
                except AuditFailure:
                    logger.error("audit write failed for disconnected stream %s", exchange.request_id)

    def _headers(self, exchange: Exchange) -> dict[str, str]:
        return {**exchange.strategy_headers(), "x-privacy-proxy-request-id": exchange.request_id}

    def _json(self, exchange: Exchange, body: dict[str, Any]) -> Response:
        return Response(serialize(body), status_code=200, headers=self._headers(exchange),
                        media_type="application/json")


async def _nothing() -> AsyncIterator[str]:
    return
    yield ""  # pragma: no cover - makes this an async generator

