"""Relay an upstream SSE chat stream to the client, restoring tokens chunk by chunk.

Nothing is buffered beyond what a cut token needs: each upstream event is decoded, restored and
sent on with the next client write. A malformed, truncated or broken upstream stream, and any fault
of the proxy's own, ends with one `data: {"error": …}` event (never a silent 200 with a short answer);
a client that goes away closes the upstream stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import httpx
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Send

from privacy_proxy.errors import AuditFailure, ProxyError, RestoreError, UpstreamError, fault_kind
from privacy_proxy.openai.chat import AnswerRestorer, ChatStreamRestorer
from privacy_proxy.pipeline import Exchange
from privacy_proxy.sse import SSEDecoder, encode_event
from privacy_proxy.state import ProxyState

logger = logging.getLogger("privacy_proxy.streaming")

DONE = b"data: [DONE]\n\n"


def _dump(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(exc: ProxyError) -> bytes:
    return _dump(exc.body())


def _verbatim(data: str) -> bytes:
    """The upstream's event as it came (a multi-line data field is re-framed line by line)."""
    return encode_event(data) if "\n" in data or "\r" in data else b"data: " + data.encode() + b"\n\n"


def _track_choices(payload: object, open_choices: set[int], closed_choices: set[int]) -> None:
    for choice in payload.get("choices") or [] if isinstance(payload, dict) else []:
        if isinstance(choice, dict):
            open_choices.add(choice.get("index", 0))
            if choice.get("finish_reason") is not None:
                closed_choices.add(choice.get("index", 0))


_END = object()


class ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator — also when the client went away —
    so the relay's cleanup (closing the upstream stream, the audit record) runs at once, not at GC."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class BatchedReads:
    """Upstream body reads, grouped: each item is every read that arrived while the previous item
    was being processed and sent. Idle streams get single reads at once (no added latency); busy
    streams get batches, so one client write carries many events instead of one each."""

    def __init__(self, response: httpx.Response, max_pending: int = 1024) -> None:
        self._response = response
        self._queue: asyncio.Queue[object] = asyncio.Queue(max_pending)
        self._reader = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for raw in self._response.aiter_bytes():
                await self._queue.put(raw)
            await self._queue.put(_END)
        except Exception as exc:  # surfaced to the consumer, in order
            await self._queue.put(exc)
        finally:
            # The task that reads closes: httpcore only releases a connection cleanly from there.
            await self._response.aclose()

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            reads = [item for item in batch if isinstance(item, bytes)]
            if reads:
                yield reads
            last = batch[-1]
            if isinstance(last, httpx.TimeoutException):
                raise UpstreamError("the upstream stopped sending in time", code="upstream_timeout") from last
            if isinstance(last, httpx.HTTPError):
                raise UpstreamError(
                    f"the upstream connection broke mid-stream ({type(last).__name__})", code="upstream_stream_broken"
                ) from last
            if isinstance(last, Exception):
                raise last
            if last is _END:
                return

    async def aclose(self) -> None:
        """Stop reading and close the upstream response (an unfinished one drops its connection)."""
        self._reader.cancel()
        # Shielded: this usually runs while the client's request is being cancelled (it went away),
        # and an interrupted wait would leave the reader unfinished and the upstream connection open.
        with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def relay_chat_stream(
    state: ProxyState, exchange: Exchange, response: httpx.Response, answers: AnswerRestorer
) -> AsyncIterator[bytes]:
    restorer = ChatStreamRestorer(answers)
    decoder = SSEDecoder()
    finished = False
    open_choices: set[int] = set()
    closed_choices: set[int] = set()
    reads_in_batches = BatchedReads(response)
    try:
        async for reads in reads_in_batches:
            out: list[bytes] = []
            for event in decoder.feed(b"".join(reads)):
                if event.data == "[DONE]":
                    tail = restorer.finish()
                    if tail is not None:
                        out.append(_dump(tail))
                    state.record(exchange)
                    finished = True
                    out.append(DONE)
                    yield b"".join(out)
                    return
                try:
                    payload = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    if out:
                        yield b"".join(out)
                    raise UpstreamError("the upstream sent a malformed stream event", code="upstream_invalid_stream")
                if isinstance(payload, dict) and "error" in payload:
                    # The upstream's own error event: pass it on (its text may quote tokens: restore them).
                    exchange.fault = "upstream_stream_error"
                    error = payload["error"]
                    if isinstance(error, dict) and isinstance(error.get("message"), str):
                        error["message"] = answers.text.restore(error["message"])
                    out.append(_dump(payload))
                    state.record(exchange)
                    finished = True
                    yield b"".join(out)
                    return
                _track_choices(payload, open_choices, closed_choices)
                if not answers or not isinstance(payload, dict):
                    out.append(_verbatim(event.data))
                    continue
                try:
                    restorer.feed(payload)
                except Exception as exc:
                    raise RestoreError("restoring the streamed answer failed") from exc
                out.append(_dump(payload) if restorer.changed else _verbatim(event.data))
            if out:
                yield b"".join(out)
        tail = restorer.finish()
        if tail is not None:
            yield _dump(tail)
        if decoder.has_pending or not open_choices or open_choices - closed_choices:
            raise UpstreamError("the upstream stream ended before it was complete", code="upstream_truncated_stream")
        # Every choice finished but the upstream omitted [DONE] (some compatible servers do): complete it.
        state.record(exchange)
        finished = True
        yield DONE
    except Exception as exc:
        if not isinstance(exc, ProxyError):
            logger.error("stream relay failed for %s: %s", exchange.request_id, type(exc).__name__)
            exc = ProxyError("internal error while relaying the stream", code="stream_relay_failed")
        exchange.fault = fault_kind(exc)
        if not isinstance(exc, AuditFailure):
            try:
                state.record(exchange)
            except AuditFailure as audit_exc:
                exc = audit_exc
        finished = True
        yield error_event(exc)
    finally:
        await reads_in_batches.aclose()
        if not finished:
            # The client went away (or the task was cancelled): the upstream stream is closed above.
            exchange.client_disconnected = True
            try:
                state.record(exchange)
            except AuditFailure:
                logger.error("audit write failed for disconnected stream %s", exchange.request_id)
