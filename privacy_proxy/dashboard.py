"""The audit dashboard: ``GET /admin`` (a read-only page) and ``GET /admin/audit/stats`` (its JSON).

Both sit under /admin, so AccessMiddleware lets them answer only to the admin key (``Authorization:
Bearer <key>``, or ``Basic`` with the key as the password — what a browser sends after its login prompt,
which a 401 on ``/admin`` asks for); without ``access.admin_key_hash`` they answer ``403 admin_disabled``.

The page (static/dashboard.html) is one self-contained file: inline CSS and script that draws SVG
charts from the stats endpoint; nothing is fetched from elsewhere, and a Content-Security-Policy with the
hashes of the inline script and style enforces that. The stats are `audit_report.build_report` over the
running log (all rotated files) plus the chain verification of ``/admin/audit/verify``: counts, type
names, policy names and hashes, times — the audit log holds no raw value, so neither does the page.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from privacy_proxy.access import (
    ADMIN_PREFIX,
    Unauthorized,
    is_admin_request,
    verify_summary,
)
from privacy_proxy.audit_report import build_report

if TYPE_CHECKING:
    from privacy_proxy.state import ProxyState

__all__ = ["install_dashboard", "page"]

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _csp(html: str) -> str:
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    return (
        "default-src 'none'; "
        f"script-src {' '.join(hashes['script']) or chr(39) + 'none' + chr(39)}; "
        f"style-src {' '.join(hashes['style']) or chr(39) + 'none' + chr(39)}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def page() -> tuple[str, dict[str, str]]:
    """The dashboard's HTML and its security headers."""
    html = resources.files("privacy_proxy").joinpath("static/dashboard.html").read_text(encoding="utf-8")
    return html, {
        "content-security-policy": _csp(html),
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


def audit_stats(state: ProxyState) -> dict[str, Any]:
    """build_report over the running log, plus the chain verification (slow on a big log: call in a thread)."""
    if state.audit is None:
        raise RuntimeError("the audit log is not open")
    result = state.verify_audit()
    report = build_report(Path(state.audit.path))
    report["log"] = Path(report["log"]).name  # the file name is enough; the directory is the host's business
    report["chain"] = {**verify_summary(result), "status": "intact" if result.ok else "broken"}
    report["policy"] = {"name": state.policy.name, "sha256": state.loaded.sha256}
    return report


def install_dashboard(app: FastAPI, state: ProxyState) -> None:
    html, headers = page()

    @app.get(ADMIN_PREFIX, include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        if not is_admin_request(request):
            raise Unauthorized("admin routes need the admin key")
        return HTMLResponse(html, headers=headers)

    @app.get(f"{ADMIN_PREFIX}/audit/stats", include_in_schema=False)
    async def stats(request: Request) -> JSONResponse:
        if not is_admin_request(request):
            raise Unauthorized("admin routes need the admin key")
        body = await asyncio.to_thread(audit_stats, state)
        return JSONResponse(body, headers={"cache-control": "no-store"})
