"""The one place that talks to the cloud: a shared `httpx.AsyncClient`, TLS verified, errors mapped.

TLS is always verified (system/certifi CAs or `upstream.ca_bundle`), with optional SPKI pins and an mTLS
client certificate (privacy_proxy/tls.py). A certificate problem is a 502 that is not retried:
`upstream_pin_mismatch` or `upstream_tls_error`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from privacy_proxy import metrics
from privacy_proxy.errors import Overloaded, UpstreamError
from privacy_proxy.policy.model import UpstreamSettings
from privacy_proxy.tls import describe_tls_failure, is_insecure_upstream, upstream_ssl_context

logger = logging.getLogger("privacy_proxy.upstream")

# Never copied between hops: connection-level headers, and framing the proxy redoes itself.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "content-encoding", "content-length", "host",
        "server", "date", "set-cookie", "alt-svc",
    }
)
# Client headers worth passing on; everything else (cookies, SDK telemetry, the client's key) stays here.
FORWARDED_REQUEST_HEADERS = ("accept", "openai-organization", "openai-project", "openai-beta", "idempotency-key")


class UpstreamTLSError(UpstreamError):
    """The upstream's certificate was refused (untrusted, expired, wrong host, pin mismatch) or mTLS failed."""

    code = "upstream_tls_error"
    retryable = False  # retrying cannot change a certificate


class _Admitted(httpx.AsyncByteStream):
    """A response body that gives its in-flight slot back when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()


class Upstream:
    def __init__(self, settings: UpstreamSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.base_url = settings.base_url
        timeouts = settings.timeouts
        # Plain http to a non-loopback host is only possible with allow_insecure_upstream; audited per record.
        self.insecure = is_insecure_upstream(settings.base_url)
        verify = upstream_ssl_context(settings) if settings.base_url.startswith("https://") else True
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool),
            # As many connections as slots: requests never queue inside httpcore, whose pool bookkeeping
            # grows with connections x waiting requests and starves the event loop under a burst.
            limits=httpx.Limits(max_connections=settings.max_in_flight,
                                max_keepalive_connections=min(64, settings.max_in_flight)),
            verify=verify,
            follow_redirects=False,
            trust_env=False,  # no ambient proxy settings: the only network peer is the configured upstream
            transport=transport,
        )
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        metrics.UPSTREAM_SLOTS.set(settings.max_in_flight)

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.settings.api_key_env) or None

    def request_headers(self, client_headers: Mapping[str, str], *, json_body: bool = True) -> dict[str, str]:
        headers = {name: client_headers[name] for name in FORWARDED_REQUEST_HEADERS if name in client_headers}
        if json_body:
            headers["content-type"] = "application/json"
        if self.settings.forward_client_authorization and "authorization" in client_headers:
            headers["authorization"] = client_headers["authorization"]
        elif self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    async def send(
        self, method: str, path: str, *, content: bytes | None, headers: dict[str, str], query: str = ""
    ) -> httpx.Response:
        """Send and return the response with its body not yet read (the caller streams or reads it)."""
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        request = self.client.build_request(method, url, content=content, headers=headers)
        release = await self._admit()
        try:
            response = await self.client.send(request, stream=True)
        except BaseException as exc:
            release()
            mapped = self._mapped(exc, method, path)
            if mapped is exc:
                raise
            metrics.upstream_error(getattr(mapped, "code", type(mapped).__name__))
            raise mapped from exc
        if response.status_code >= 400:
            metrics.upstream_error(response.status_code)
        response.stream = _Admitted(response.stream, release)
        return response

    async def _admit(self) -> Callable[[], None]:
        """Wait for an in-flight slot; returns the function that gives it back (once)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.settings.timeouts.queue)
        except TimeoutError:
            logger.warning("upstream queue full: %d requests in flight", self.settings.max_in_flight)
            raise Overloaded(
                f"the proxy already has {self.settings.max_in_flight} requests in flight to the upstream; retry shortly"
            ) from None
        released = False
        metrics.upstream_slot_taken()

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._slots.release()
                metrics.upstream_slot_released()

        return release

    def _mapped(self, exc: BaseException, method: str, path: str) -> BaseException:
        """An httpx failure as the proxy's error; anything else (cancellation) as it is."""
        if isinstance(exc, httpx.TimeoutException):
            logger.warning("upstream %s %s: %s", method, path, type(exc).__name__)
            return UpstreamError("the upstream did not answer in time", code="upstream_timeout")
        if isinstance(exc, httpx.HTTPError):
            logger.warning("upstream %s %s: %s: %s", method, path, type(exc).__name__, exc)
            tls = describe_tls_failure(exc)
            if tls is not None:
                return UpstreamTLSError(tls[1], code=tls[0])
            return UpstreamError(f"the upstream is unreachable ({type(exc).__name__})")
        return exc

    async def aclose(self) -> None:
        await self.client.aclose()


async def read_all(response: httpx.Response) -> bytes:
    """The whole answer body; the response is closed either way (its connection and in-flight slot go back).
    A connection that breaks meanwhile is a 502 `upstream_stream_broken`."""
    try:
        return await response.aread()
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"the upstream connection broke while sending the answer ({type(exc).__name__})",
            code="upstream_stream_broken",
        ) from exc
    finally:
        await response.aclose()


def upstream_json(raw: bytes) -> Any:
    """The upstream's answer body as JSON; anything else is a 502 `upstream_invalid_json`."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise UpstreamError("the upstream answered with invalid JSON", code="upstream_invalid_json") from None


def relay_headers(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
