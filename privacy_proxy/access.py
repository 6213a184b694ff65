"""Who may use the proxy: client API keys, a policy per key, and a separate admin key.

    access:
      keys:
        - {name: team-a, hash: "sha256:<hex>", policy: policies/strict.yaml}   # served under strict.yaml
        - {name: ci, hash: "sha256:<hex>"}                                      # served under this policy
      keys_file: access/keys.yaml       # more keys, same shape (a YAML list); re-read on reload
      admin_key_hash: "sha256:<hex>"    # /admin/* and /metrics; client keys never open them

Keys are stored only as SHA-256 hashes (`privacy-proxy access new-key` prints a key once with its hash)
and compared in constant time against every stored hash. `AccessMiddleware` (plain ASGI) runs before
every route: `/healthz*` stays open, `/admin` and `/admin/*` need the admin key (and are off without one),
`/metrics` follows `server.metrics` (`metrics_refusal`), everything else needs a client key when access
is on (`401 invalid_api_key` otherwise). The matched key goes into the `CURRENT_CLIENT`
context variable, which `ProxyState.runtime` reads: each request runs under its key's policy and its
audit record names the key, without the routes knowing about keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from privacy_proxy.errors import ConfigError, ProxyError
from privacy_proxy.policy.model import AccessKeySpec, AccessSettings

if TYPE_CHECKING:
    from privacy_proxy.audit import VerifyResult
    from privacy_proxy.state import ProxyState

__all__ = [
    "CURRENT_CLIENT", "AccessControl", "AccessMiddleware", "ClientKey", "Unauthorized",
    "admin_router", "hash_key", "install_access", "is_admin_request", "metrics_refusal", "new_key", "verify_summary",
]

OPEN_PATHS = frozenset({"/healthz", "/healthz/upstream"})
METRICS_PATH = "/metrics"  # its own rule: server.metrics (metrics_refusal)
ADMIN_PREFIX = "/admin"
_ADMIN_SCOPE_FLAG = "privacy_proxy.admin"


@dataclass(frozen=True)
class ClientKey:
    name: str
    digest: bytes
    policy: str | None  # a policy file for this key's requests; None: the proxy's own policy

    def __repr__(self) -> str:
        return f"ClientKey(name={self.name!r}, digest=[secure], policy={self.policy!r})"


CURRENT_CLIENT: ContextVar[ClientKey | None] = ContextVar("privacy_proxy_client", default=None)


class Unauthorized(ProxyError):
    status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "www-authenticate": "Bearer"}


def hash_key(key: str) -> str:
    """The form stored in a policy: ``sha256:<hex>`` of the key's UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "pp-" + secrets.token_urlsafe(32)


def _refusal(status: int, message: str, code: str) -> ProxyError:
    error = ProxyError(message, code=code)
    error.status = status
    return error


def _digest(stored: str) -> bytes:
    return bytes.fromhex(stored.removeprefix("sha256:"))


_KEY_LIST = TypeAdapter(list[AccessKeySpec])


class AccessControl:
    """The keys of one policy version; swapped whole with the policy on reload."""

    def __init__(self, keys: list[ClientKey], admin_digest: bytes | None, enabled: bool) -> None:
        self.keys = tuple(keys)
        self.admin_digest = admin_digest
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: AccessSettings) -> AccessControl:
        specs = list(settings.keys)
        if settings.keys_file is not None:
            specs += _read_keys_file(Path(settings.keys_file))
        names = [spec.name for spec in specs]
        digests = [spec.hash for spec in specs]
        for label, values in (("name", names), ("hash", digests)):
            duplicates = sorted({value for value in values if values.count(value) > 1})
            if duplicates:
                shown = duplicates if label == "name" else [f"{d[:15]}…" for d in duplicates]
                raise ConfigError(f"access: duplicate key {label}s across keys and keys_file: {', '.join(shown)}")
        admin = settings.admin_key_hash
        if admin is not None and admin in digests:
            raise ConfigError("access.admin_key_hash is also a client key; the admin key must be its own")
        keys = [ClientKey(spec.name, _digest(spec.hash), spec.policy) for spec in specs]
        return cls(keys, _digest(admin) if admin else None, settings.enabled)

    @property
    def policies(self) -> list[str]:
        """The distinct per-key policy files, in key order."""
        return list(dict.fromkeys(key.policy for key in self.keys if key.policy))

    def client(self, presented: str | None) -> ClientKey | None:
        """The key whose hash matches; every stored hash is compared (constant time per hash, no early exit)."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def is_admin(self, presented: str | None) -> bool:
        if not presented or self.admin_digest is None:
            return False
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, self.admin_digest)


def _read_keys_file(path: Path) -> list[AccessKeySpec]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"access.keys_file {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"access.keys_file {path}: invalid YAML ({type(exc).__name__})") from None
    if isinstance(data, dict) and set(data) == {"keys"}:
        data = data["keys"]
    try:
        return _KEY_LIST.validate_python(data or [])
    except ValidationError as exc:
        problems = "; ".join(
            f"[{']['.join(str(p) for p in error['loc'])}]: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"access.keys_file {path}: {problems}") from None


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def admin_token(scope: Scope) -> str | None:
    """The key presented for an admin route: ``Bearer <key>``, or ``Basic`` with the key as the password
    (a browser's login prompt; the user name is ignored)."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "basic" and token.strip():
                try:
                    decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    return None
                return decoded.partition(":")[2] or None
            return bearer_token(scope)
    return None


def is_admin_request(request: Request) -> bool:
    """Whether AccessMiddleware let this request through as an admin request."""
    return request.scope.get(_ADMIN_SCOPE_FLAG) is True


class AdminLogin(Unauthorized):
    """A 401 on the dashboard page: asks a browser for the admin key (as the password of a Basic login)."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "www-authenticate": 'Basic realm="privacy-proxy admin", charset="UTF-8"'}


class AccessMiddleware:
    """Gatekeeper for every HTTP request; see the module docstring."""

    def __init__(self, app: ASGIApp, state: ProxyState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        access: AccessControl | None = getattr(self.state, "access", None)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if access is None or access.admin_digest is None:
                error = _refusal(403, "admin routes are disabled: set access.admin_key_hash", "admin_disabled")
                await _reject(error, scope, receive, send)
                return
            if not access.is_admin(admin_token(scope)):
                denied = AdminLogin if path == ADMIN_PREFIX else Unauthorized
                await _reject(denied("admin routes need the admin key (Authorization: Bearer …)"), scope, receive, send)
                return
            scope[_ADMIN_SCOPE_FLAG] = True
            await self.app(scope, receive, send)
            return
        if path == METRICS_PATH:
            refusal = metrics_refusal(scope, access, self.state.policy.server.metrics)
            if refusal is not None:
                await _reject(refusal, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if access is None or not access.enabled or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        client = access.client(bearer_token(scope))
        if client is None:
            await _reject(
                Unauthorized("a valid privacy-proxy API key is required (Authorization: Bearer …)"), scope, receive, send
            )
            return
        token = CURRENT_CLIENT.set(client)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_CLIENT.reset(token)


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    try:
        return bool(client) and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def metrics_refusal(scope: Scope, access: AccessControl | None, mode: str) -> ProxyError | None:
    """Why GET /metrics is refused (None: serve it). See `server.metrics` in the policy model."""
    if mode == "open":
        return None
    if mode == "off":
        return _refusal(404, "metrics are turned off (server.metrics: off)", "metrics_disabled")
    has_admin = access is not None and access.admin_digest is not None
    if has_admin and access is not None and access.is_admin(admin_token(scope)):
        return None
    if mode == "auto" and not (access is not None and access.enabled) and _is_loopback(scope):
        return None
    if mode == "admin" or (access is not None and access.enabled):
        if not has_admin:
            return _refusal(403, "metrics need the admin key, and none is set (access.admin_key_hash)",
                            "admin_disabled")
        return Unauthorized("metrics need the admin key (Authorization: Bearer …)")
    return _refusal(403, "metrics are served to loopback clients only (server.metrics: auto); "
                    "use the admin key or server.metrics: open", "metrics_forbidden")


def _error_response(error: ProxyError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


async def _reject(error: ProxyError, scope: Scope, receive: Receive, send: Send) -> None:
    await _error_response(error)(scope, receive, send)


def verify_summary(result: VerifyResult) -> dict[str, Any]:
    """What the admin routes say about an audit chain verification (file names only, no directories)."""
    return {
        "ok": result.ok,
        "records": result.records,
        "checkpoints": result.checkpoints,
        "reason": result.reason,
        "file": result.file.name if result.file else None,
        "first_bad_line": result.first_bad_line,
    }


def admin_router(state: ProxyState) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)

    def require_admin(request: Request) -> None:
        # Defence in depth: these routes answer only behind AccessMiddleware's admin check.
        if not is_admin_request(request):
            raise Unauthorized("admin routes need the admin key")

    @router.get("/audit/verify")
    async def audit_verify(request: Request) -> JSONResponse:
        require_admin(request)
        result = await asyncio.to_thread(state.verify_audit)
        return JSONResponse(verify_summary(result), status_code=200 if result.ok else 409)

    @router.post("/reload")
    async def reload(request: Request) -> JSONResponse:
        require_admin(request)
        ok = await state.reload()
        if not ok:
            refused = _refusal(422, f"reload refused, policy kept: {state.last_reload_error}", "invalid_policy")
            return _error_response(refused)
        return JSONResponse({"reloaded": True, "policy": state.policy.name, "policy_sha256": state.loaded.sha256,
                             "reloads": state.reloads})

    return router


def install_access(app: FastAPI, state: ProxyState) -> None:
    """The one hook app.py calls: the access middleware and the admin routes."""
    app.add_middleware(AccessMiddleware, state=state)
    app.include_router(admin_router(state))
