"""Relay an upstream SSE stream to the client, restoring tokens event by event.

Nothing is buffered beyond what a cut token needs: each upstream event is decoded, restored and
sent on with the next client write. A malformed, truncated or broken upstream stream, and any fault
of the proxy's own, ends with one error event (never a silent 200 with a short answer); a client
that goes away closes the upstream stream.

`relay_stream` is the same for every route; a `StreamDialect` knows one wire format:
`ChoicesDialect` for `data:`-only JSON chunks with `choices` ended by `[DONE]` (chat, completions),
`TypedEventsDialect` for `event:`-typed events ended by a terminal event (Responses:
`response.completed`/`.incomplete`/`.failed`/`error`; Anthropic Messages: `message_stop`/`error`),
whose protocol-specific restoring is an `EventRestorer` from `openai/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio
import httpx
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Send

from privacy_proxy.errors import (
    AuditFailure,
    ProxyError,
    RestoreError,
    UpstreamError,
    fault_kind,
)
from privacy_proxy.pipeline import Exchange
from privacy_proxy.sse import ServerSentEvent, SSEDecoder, encode, encode_event
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


def _malformed() -> UpstreamError:
    return UpstreamError("the upstream sent a malformed stream event", code="upstream_invalid_stream")


def _truncated() -> UpstreamError:
    return UpstreamError("the upstream stream ended before it was complete", code="upstream_truncated_stream")


class StreamDialect(Protocol):
    """One SSE wire format, sans-IO. `feed` returns the bytes to send for one upstream event; once
    `finished`, the relay writes the audit record and then sends `final()` (the end marker)."""

    finished: bool
    fault: str | None  # a value-free name when the upstream itself reported an error in the stream

    def feed(self, event: ServerSentEvent) -> bytes: ...

    def end(self) -> bytes:
        """The upstream closed without an end marker: what is still held back."""
        ...

    def check_complete(self, pending: bool) -> None:
        """Raise UpstreamError when a stream that closed without an end marker is incomplete."""
        ...

    def final(self) -> bytes: ...

    def error_event(self, exc: ProxyError) -> bytes: ...


class ChoiceRestorer(Protocol):
    answers: Any  # the request's `Answers`: falsy when there is nothing to restore (events go out verbatim)
    changed: bool

    def feed(self, chunk: dict[str, Any]) -> dict[str, Any]: ...

    def finish(self) -> dict[str, Any] | None: ...


class ChoicesDialect:
    """`data:` JSON chunks with per-choice deltas, ended by `data: [DONE]` (chat and completions)."""

    def __init__(self, restorer: ChoiceRestorer) -> None:
        self.restorer = restorer
        self.answers = restorer.answers
        self.finished = False
        self.fault: str | None = None
        self._open: set[int] = set()
        self._closed: set[int] = set()

    def feed(self, event: ServerSentEvent) -> bytes:
        if event.data == "[DONE]":
            self.finished = True
            return self.end()
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _malformed() from None
        if isinstance(payload, dict) and "error" in payload:
            # The upstream's own error event: pass it on (its text may quote tokens: restore them).
            self.finished, self.fault = True, "upstream_stream_error"
            error = payload["error"]
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                error["message"] = self.answers.text.restore(error["message"])
            return _dump(payload)
        _track_choices(payload, self._open, self._closed)
        if not self.answers or not isinstance(payload, dict):
            return _verbatim(event.data)
        try:
            self.restorer.feed(payload)
        except Exception as exc:
            raise RestoreError("restoring the streamed answer failed") from exc
        return _dump(payload) if self.restorer.changed else _verbatim(event.data)

    def end(self) -> bytes:
        tail = self.restorer.finish()
        return _dump(tail) if tail is not None else b""

    def check_complete(self, pending: bool) -> None:
        # Every choice finished but the upstream omitted [DONE] (some compatible servers do): complete.
        if pending or not self._open or self._open - self._closed:
            raise _truncated()

    def final(self) -> bytes:
        return b"" if self.fault else DONE

    def error_event(self, exc: ProxyError) -> bytes:
        return error_event(exc)


class EventRestorer(Protocol):
    """A protocol's sans-IO restorer for `event:`-typed streams (Responses, Anthropic Messages)."""

    finished: bool  # the terminal event was fed
    fault: str | None

    def feed(self, event: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
        """The events to send for one upstream event, each with whether it differs from the upstream's."""
        ...

    def finish(self) -> list[tuple[dict[str, Any], bool]]: ...

    def error_payload(self, exc: ProxyError) -> dict[str, Any]: ...


class TypedEventsDialect:
    """`event:`-typed JSON events; the terminal event goes out after the audit record."""

    def __init__(self, restorer: EventRestorer) -> None:
        self.restorer = restorer
        self.finished = False
        self.fault: str | None = None
        self._final = b""

    def feed(self, event: ServerSentEvent) -> bytes:
        if event.data == "[DONE]":  # not part of these formats; a stream without its terminal event is cut
            return b""
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _malformed() from None
        if not isinstance(payload, dict):
            raise _malformed()
        if "type" not in payload and event.event:
            payload["type"] = event.event
        try:
            emitted = self.restorer.feed(payload)
        except ProxyError:
            raise
        except Exception as exc:
            raise RestoreError("restoring the streamed answer failed") from exc
        frames = [self._frame(out) if changed else encode(event) for out, changed in emitted]
        if self.restorer.finished:
            self.finished, self.fault = True, self.restorer.fault
            self._final = frames.pop()
        return b"".join(frames)

    def end(self) -> bytes:
        return b"".join(self._frame(payload) for payload, _ in self.restorer.finish())

    def check_complete(self, pending: bool) -> None:
        raise _truncated()  # closed without a terminal event: the answer is incomplete

    def final(self) -> bytes:
        return self._final

    def error_event(self, exc: ProxyError) -> bytes:
        return self._frame(self.restorer.error_payload(exc))

    @staticmethod
    def _frame(payload: dict[str, Any]) -> bytes:
        kind = payload.get("type")
        name = kind if isinstance(kind, str) and kind and "\n" not in kind and "\r" not in kind else None
        head = b"event: " + name.encode() + b"\n" if name else b""
        return head + b"data: " + orjson.dumps(payload) + b"\n\n"


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
        # Stopping the reader cancels this scope, not the task: a cancelled task's `aclose` can be cut
        # short and leave httpcore's connection ACTIVE in the pool for good (one leak per stream).
        self._stop = anyio.CancelScope()
        self._reader = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            with self._stop:
                try:
                    async for raw in self._response.aiter_bytes():
                        await self._queue.put(raw)
                    await self._queue.put(_END)
                except Exception as exc:  # surfaced to the consumer, in order
                    await self._queue.put(exc)
        finally:
            # The task that reads closes, shielded: a finished body returns the connection to the
            # pool, an unfinished one drops it; either way it leaves the pool's active set.
            with anyio.CancelScope(shield=True):
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
        self._stop.cancel()
        # Shielded: this usually runs while the client's request is being cancelled (it went away),
        # and an interrupted wait would leave the reader unfinished and the upstream connection open.
        with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def relay_stream(
    state: ProxyState, exchange: Exchange, response: httpx.Response, dialect: StreamDialect
) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    recorded = False
    reads_in_batches = BatchedReads(response)
    out: list[bytes] = []
    since, restoring = time.perf_counter(), [0.0]  # seconds spent restoring events (metrics: stage "restore")

    def timed() -> None:
        exchange.timings["restore"] = exchange.timings.get("restore", 0.0) + restoring[0]
        exchange.spans.append(("stream", since, time.perf_counter()))
        restoring[0] = 0.0

    try:
        async for reads in reads_in_batches:
            for event in decoder.feed(b"".join(reads)):
                started = time.perf_counter()
                out.append(dialect.feed(event))
                restoring[0] += time.perf_counter() - started
                if dialect.finished:
                    break
            if dialect.finished:
                break
            if out:
                yield b"".join(out)
                out = []
        else:
            out.append(dialect.end())
            dialect.check_complete(decoder.has_pending)
        exchange.fault = dialect.fault or exchange.fault
        timed()
        # The end marker goes out only once the decision is on record.
        state.record(exchange)
        recorded = True
        out.append(dialect.final())
        yield b"".join(out)
    except Exception as exc:
        if not isinstance(exc, ProxyError):
            logger.error("stream relay failed for %s: %s", exchange.request_id, type(exc).__name__)
            exc = ProxyError("internal error while relaying the stream", code="stream_relay_failed")
        exchange.fault = fault_kind(exc)
        if not isinstance(exc, AuditFailure):
            timed()
            try:
                state.record(exchange)
            except AuditFailure as audit_exc:
                exc = audit_exc
        recorded = True
        # What was restored before the fault still goes out, then one error event.
        yield b"".join(out) + dialect.error_event(exc)
    finally:
        await reads_in_batches.aclose()
        if not recorded:
            # The client went away (or the task was cancelled): the upstream stream is closed above.
            exchange.client_disconnected = True
            timed()
            try:
                state.record(exchange)
            except AuditFailure:
                logger.error("audit write failed for disconnected stream %s", exchange.request_id)
