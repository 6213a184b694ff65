"""What a running proxy holds: the current compiled policy, the upstream client and the audit log.

The runtime is one reference swapped whole on reload; a request takes it once at its start, so
requests in flight finish under the policy they started with and none is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy_proxy.audit import AuditError, AuditLog, load_or_create_key
from privacy_proxy.errors import AuditFailure, ConfigError, ProxyError
from privacy_proxy.pipeline import Exchange
from privacy_proxy.policy.loader import LoadedPolicy, load_policy
from privacy_proxy.policy.model import Policy
from privacy_proxy.runtime import Runtime, derive_secret
from privacy_proxy.upstream import Upstream
from privacy_proxy.vault import MemoryVault, Vault

logger = logging.getLogger("privacy_proxy")


@dataclass(frozen=True)
class Overrides:
    """Command-line flags; they win over the policy file, on start and on every reload."""

    host: str | None = None
    port: int | None = None
    upstream: str | None = None
    audit_log: str | None = None

    def apply(self, loaded: LoadedPolicy) -> LoadedPolicy:
        policy = loaded.policy
        data = policy.model_dump()
        if self.host is not None:
            data["server"]["host"] = self.host
        if self.port is not None:
            data["server"]["port"] = self.port
        if self.upstream is not None:
            data["upstream"]["base_url"] = self.upstream
        if self.audit_log is not None:
            data["audit"]["path"] = self.audit_log
        return LoadedPolicy(Policy.model_validate(data), loaded.path, loaded.sha256)


def load(path: str | Path, overrides: Overrides) -> LoadedPolicy:
    return overrides.apply(load_policy(path))


class ProxyState:
    def __init__(self, policy_path: str | Path, overrides: Overrides = Overrides()) -> None:
        self.policy_path = Path(policy_path)
        self.overrides = overrides
        # Parse now so a broken policy stops start-up with its error; the heavy build comes later.
        self.loaded = load(self.policy_path, overrides)
        self.runtime: Runtime | None = None
        self.upstream: Upstream | None = None
        self.audit: AuditLog | None = None
        # Mappings of stateful APIs (previous_response_id); one store for the process, kept across reloads.
        self.vault: Vault | None = None
        self.secret = b""
        self.reloads = 0
        self.last_reload_error: str | None = None
        # Set when the first build fails: the server stops and `serve` exits non-zero with it.
        self.fatal: str | None = None
        self._reload_lock = asyncio.Lock()

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    def open(self) -> None:
        """Open the audit log and create the upstream client (connects nothing). Fast; fails loudly."""
        audit = self.policy.audit
        audit_path = Path(audit.path)
        try:
            key = load_or_create_key(audit.hmac_key_env, Path(audit.hmac_key_file))
            self.audit = AuditLog(audit_path, key, fsync=audit.fsync)
        except AuditError as exc:
            raise ConfigError(f"audit log: {exc}") from None
        self.secret = derive_secret(key)
        self.upstream = Upstream(self.policy.upstream)
        self.vault = MemoryVault()
        if not self.upstream.api_key and not self.policy.upstream.forward_client_authorization:
            logger.warning("no upstream API key: set %s", self.policy.upstream.api_key_env)

    async def build(self) -> None:
        """Build the detectors in a thread; until then /healthz answers 503 and requests get 503."""
        try:
            self.runtime = await asyncio.to_thread(Runtime.build, self.loaded, self.secret)
        except ProxyError as exc:
            self.fatal = exc.message
            raise
        except Exception as exc:
            self.fatal = f"building the policy {self.policy.name} failed: {type(exc).__name__}: {exc}"
            raise ConfigError(self.fatal) from exc
        logger.info("policy %s (sha256 %s) loaded", self.policy.name, self.loaded.sha256[:12])

    async def stop(self) -> None:
        if self.upstream is not None:
            await self.upstream.aclose()
        if self.audit is not None:
            self.audit.close()
        if self.vault is not None:
            self.vault.close()

    async def reload(self) -> bool:
        """Re-read the policy file; a broken one is refused and the running policy kept."""
        async with self._reload_lock:
            try:
                loaded = await asyncio.to_thread(load, self.policy_path, self.overrides)
                runtime = await asyncio.to_thread(Runtime.build, loaded, self.secret)
            except ProxyError as exc:
                self.last_reload_error = exc.message
                logger.error("policy reload refused, keeping %s: %s", self.policy.name, exc.message)
                return False
            except Exception as exc:  # a reload must never take the running proxy down
                self.last_reload_error = type(exc).__name__
                logger.error("policy reload refused, keeping %s: %s", self.policy.name, type(exc).__name__)
                return False
            self.loaded, self.runtime = loaded, runtime
            self.reloads += 1
            self.last_reload_error = None
            logger.info("policy reloaded: %s (sha256 %s)", loaded.policy.name, loaded.sha256[:12])
            return True

    def record(self, exchange: Exchange) -> dict[str, Any]:
        """Write the exchange's audit record; failure to audit is a failure of the request."""
        if self.audit is None:
            raise AuditFailure("the audit log is not open; the request was not served")
        try:
            record = self.audit.append(exchange.audit_fields())
        except (AuditError, OSError) as exc:
            logger.error("audit write failed: %s", type(exc).__name__)
            raise AuditFailure("the decision could not be written to the audit log; the request was not served") from exc
        logger.info(
            "request %s %s decision=%s status=%s latency_ms=%s",
            exchange.request_id, exchange.route, exchange.decision, exchange.upstream_status,
            record.get("latency_ms"),
        )
        return record
