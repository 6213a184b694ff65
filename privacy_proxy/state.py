"""What a running proxy holds: the current compiled policy, the upstream client, the audit log, the vault
and the access keys.

The runtime is one reference swapped whole on reload; a request takes it once at its start, so
requests in flight finish under the policy they started with and none is dropped. With access keys
that name their own policy files, one runtime is built per distinct file; `runtime` answers with the
one of the current request's key (access.CURRENT_CLIENT), else the proxy's own policy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from privacy_proxy import metrics, telemetry
from privacy_proxy.access import CURRENT_CLIENT, AccessControl
from privacy_proxy.audit import AuditError, AuditLog, VerifyResult, load_or_create_key, verify_log
from privacy_proxy.audit_crypto import Sealer, SealError, Signer, load_or_create_signing_key, load_seal_public_key
from privacy_proxy.errors import AuditFailure, ConfigError, ProxyError
from privacy_proxy.pipeline import Exchange
from privacy_proxy.policy.loader import LoadedPolicy, load_policy
from privacy_proxy.policy.model import AuditSettings, Policy
from privacy_proxy.runtime import Runtime, derive_secret
from privacy_proxy.upstream import Upstream
from privacy_proxy.vault import Vault, VaultError, open_vault

logger = logging.getLogger("privacy_proxy")


@dataclass(frozen=True)
class Overrides:
    """Command-line flags; they win over the policy file, on start and on every reload."""

    host: str | None = None
    port: int | None = None
    upstream: str | None = None
    audit_log: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

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
        if self.tls_cert is not None:
            data["server"]["tls_cert"] = self.tls_cert
        if self.tls_key is not None:
            data["server"]["tls_key"] = self.tls_key
        try:
            return LoadedPolicy(Policy.model_validate(data), loaded.path, loaded.sha256)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'policy'}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigError(f"{loaded.path}: with the command-line flags: {problems}") from None


def signing_key_path(audit: AuditSettings) -> Path:
    """audit.signing_key_file, or audit-signing.key beside the log."""
    return Path(audit.signing_key_file) if audit.signing_key_file else Path(audit.path).parent / "audit-signing.key"


def load_client_policy(path: str) -> LoadedPolicy:
    """A per-key policy file: its detection, rules, transform, content, failure_mode and server limits apply;
    the process-level sections (upstream, audit, vault, access, listener) come from the main policy."""
    loaded = load_policy(path)
    if loaded.policy.access.enabled:
        raise ConfigError(f"{path}: a per-key policy cannot define access keys of its own")
    return loaded


def load(path: str | Path, overrides: Overrides) -> LoadedPolicy:
    return overrides.apply(load_policy(path))


class ProxyState:
    def __init__(self, policy_path: str | Path, overrides: Overrides = Overrides()) -> None:
        self.policy_path = Path(policy_path)
        self.overrides = overrides
        # Parse now so a broken policy stops start-up with its error; the heavy build comes later.
        self.loaded = load(self.policy_path, overrides)
        self.access = AccessControl.from_settings(self.policy.access)
        self._runtime: Runtime | None = None
        self._client_runtimes: dict[str, Runtime] = {}
        self.upstream: Upstream | None = None
        self.audit: AuditLog | None = None
        self.sealer: Sealer | None = None
        self.signer: Signer | None = None
        self._audit_key = b""
        self._audit_required = True
        self._checkpoint_stop = threading.Event()
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

    @property
    def runtime(self) -> Runtime | None:
        """The runtime for the current request: its access key's policy if it names one, else the proxy's."""
        client = CURRENT_CLIENT.get()
        if client is None or client.policy is None or self._runtime is None:
            return self._runtime
        return self._client_runtimes.get(client.policy)

    @runtime.setter
    def runtime(self, value: Runtime | None) -> None:
        self._runtime = value

    def open(self) -> None:
        """Open the audit log, the vault and the upstream client (connects nothing). Fast; fails loudly."""
        audit = self.policy.audit
        audit_path = Path(audit.path)
        checkpoints = audit.checkpoint_every > 0 or audit.checkpoint_interval > 0
        try:
            key = load_or_create_key(audit.hmac_key_env, Path(audit.hmac_key_file))
            if checkpoints:
                self.signer = load_or_create_signing_key(audit.signing_key_env, signing_key_path(audit))
            if audit.seal_to:
                self.sealer = Sealer(load_seal_public_key(Path(audit.seal_to)))
            self.audit = AuditLog(
                audit_path, key, fsync=audit.fsync, rotate_bytes=audit.rotate_bytes, rotate_daily=audit.rotate_daily,
                signer=self.signer, checkpoint_every=audit.checkpoint_every,
                checkpoint_interval=audit.checkpoint_interval,
            )
        except (AuditError, SealError) as exc:
            raise ConfigError(f"audit log: {exc}") from None
        self._audit_key = key
        self._audit_required = audit.required
        if not audit.required:
            logger.warning("audit.required is false: requests are served even when their audit record cannot be written")
        if audit.checkpoint_interval > 0:
            self._start_checkpoint_timer(audit.checkpoint_interval)
        self.secret = derive_secret(key)
        self.upstream = Upstream(self.policy.upstream)
        if self.upstream.insecure:
            logger.warning("upstream.allow_insecure_upstream: prompts go to %s unencrypted", self.upstream.base_url)
        try:
            self.vault = open_vault(self.policy.vault)
        except VaultError as exc:
            raise ConfigError(f"vault: {exc}") from None
        if not self.upstream.api_key and not self.policy.upstream.forward_client_authorization:
            logger.warning("no upstream API key: set %s", self.policy.upstream.api_key_env)

    def _start_checkpoint_timer(self, interval: float) -> None:
        """Checkpoint an idle log too: a daemon thread asks for one every `interval` seconds."""
        audit = self.audit

        def tick() -> None:
            while not self._checkpoint_stop.wait(interval):
                try:
                    if audit is not None:
                        audit.checkpoint()
                except AuditError as exc:
                    logger.error("audit checkpoint failed: %s", exc)

        threading.Thread(target=tick, name="audit-checkpoints", daemon=True).start()

    def _build_all(self, loaded: LoadedPolicy, access: AccessControl) -> tuple[Runtime, dict[str, Runtime]]:
        """The proxy's runtime and one per distinct per-key policy file (none is served until all are built)."""
        default = Runtime.build(loaded, self.secret)
        clients: dict[str, Runtime] = {}
        for path in access.policies:
            if Path(path).resolve() == Path(loaded.path).resolve():
                clients[path] = default
            else:
                clients[path] = Runtime.build(load_client_policy(path), self.secret)
        return default, clients

    def verify_audit(self) -> VerifyResult:
        """Verify the running log up to its current head (for /admin/audit/verify)."""
        if self.audit is None:
            return VerifyResult(False, 0, None, "the audit log is not open")
        self.audit.checkpoint()  # sign the current head, so the signature check reaches it
        seq, head = self.audit.snapshot()
        public_keys = None
        if self.signer is not None and seq >= 0:
            public_keys = {self.signer.key_id: self.signer.public}
        return verify_log(self.audit.path, self._audit_key, public_keys=public_keys, until_seq=seq, expect_head=head)

    async def build(self) -> None:
        """Build the detectors in a thread; until then /healthz answers 503 and requests get 503."""
        try:
            runtime, clients = await asyncio.to_thread(self._build_all, self.loaded, self.access)
            self._client_runtimes = clients
            self._runtime = runtime
        except ProxyError as exc:
            self.fatal = exc.message
            raise
        except Exception as exc:
            self.fatal = f"building the policy {self.policy.name} failed: {type(exc).__name__}: {exc}"
            raise ConfigError(self.fatal) from exc
        logger.info("policy %s (sha256 %s) loaded", self.policy.name, self.loaded.sha256[:12])

    async def stop(self) -> None:
        self._checkpoint_stop.set()
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
                access = await asyncio.to_thread(AccessControl.from_settings, loaded.policy.access)
                runtime, clients = await asyncio.to_thread(self._build_all, loaded, access)
            except ProxyError as exc:
                self.last_reload_error = exc.message
                logger.error("policy reload refused, keeping %s: %s", self.policy.name, exc.message)
                return False
            except Exception as exc:  # a reload must never take the running proxy down
                self.last_reload_error = type(exc).__name__
                logger.error("policy reload refused, keeping %s: %s", self.policy.name, type(exc).__name__)
                return False
            self.loaded, self.access, self._runtime, self._client_runtimes = loaded, access, runtime, clients
            self.reloads += 1
            self.last_reload_error = None
            logger.info("policy reloaded: %s (sha256 %s)", loaded.policy.name, loaded.sha256[:12])
            return True

    def audit_fields(self, exchange: Exchange) -> dict[str, Any]:
        """The exchange's fields plus what the process knows: the client key, an insecure upstream, sealed values."""
        fields = exchange.audit_fields()
        client = CURRENT_CLIENT.get()
        if client is not None:
            fields["client"] = client.name
        if self.upstream is not None and self.upstream.insecure:
            fields["insecure_upstream"] = True
        if self.sealer is not None and exchange.mapping:
            originals = {"restorable": dict(exchange.mapping.restorable), "protected": sorted(exchange.mapping.protected)}
            fields["sealed"] = self.sealer.seal(originals, aad=exchange.request_id)
        return fields

    def record(self, exchange: Exchange) -> dict[str, Any]:
        """Write the exchange's audit record; failure to audit is a failure of the request
        (unless audit.required is false: then it is logged loudly and the request goes on).
        The exchange is counted in the metrics and traced either way, once."""
        try:
            return self._write(exchange)
        finally:
            observe(exchange)

    def _write(self, exchange: Exchange) -> dict[str, Any]:
        try:
            if self.audit is None:
                raise AuditError("the audit log is not open")
            record = self.audit.append(self.audit_fields(exchange))
        except Exception as exc:
            if not self._audit_required:
                logger.error(
                    "AUDIT-UNWRITTEN: request %s served without an audit record (%s); audit.required is false",
                    exchange.request_id, type(exc).__name__,
                )
                return {}
            logger.error("audit write failed: %s", type(exc).__name__)
            raise AuditFailure("the decision could not be written to the audit log; the request was not served") from exc
        logger.info(
            "request %s %s decision=%s status=%s latency_ms=%s",
            exchange.request_id, exchange.route, exchange.decision, exchange.upstream_status,
            record.get("latency_ms"),
        )
        return record


def observe(exchange: Exchange) -> None:
    """Metrics and trace spans of a finished exchange; never fails the request."""
    if exchange.observed:
        return
    exchange.observed = True
    try:
        metrics.observe_exchange(exchange)
        telemetry.emit(exchange)
    except Exception as exc:  # noqa: BLE001 - observability must not take a request down
        logger.error("metrics/tracing failed for %s: %s", exchange.request_id, type(exc).__name__)
