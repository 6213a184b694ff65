"""The Ray engine of `privacy-proxy scan --engine ray`: batches scanned by actors on a Ray cluster.

Each actor builds the Runtime once, from the policy file's bytes and the transform secret derived from the audit
key (the key itself never leaves this process), so keyed tokens and surrogates match the local engine exactly;
then it turns batches into output text with the same `scan.scan_batch`. At most 2 batches per actor are in
flight; finished batches are reordered and handed to the sink in input order.

Without `address` a private Ray node is started on loopback only (`ray.init(num_cpus=workers,
include_dashboard=False)`) and stopped at the end: no usage statistics, and no probe of cloud metadata endpoints
(Ray's dashboard process looks for them even with usage statistics off, so its HTTP goes to a closed loopback
port while the node starts). With `address`, the driver connects to that cluster; the policy's file paths
(models, gazetteers) must then exist on its nodes too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from privacy_proxy.errors import ConfigError
from privacy_proxy.scan_batch import Batch, InputReader, Sink

# Ray's processes inherit these while a local node starts (see the module docstring).
_NO_EGRESS_PROXY = "http://127.0.0.1:9"
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")
_LOCAL_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Bind the node to 127.0.0.1 instead of this machine's outward address (Ray's choice on macOS/Windows).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    **{name: _NO_EGRESS_PROXY for name in _PROXY_VARS},
    "no_proxy": "localhost,127.0.0.1,::1",
    "NO_PROXY": "localhost,127.0.0.1,::1",
}
IN_FLIGHT_PER_WORKER = 2


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--engine ray needs Ray, which is not installed: pip install 'privacy-proxy[ray]' "
            f"(or: pip install 'ray>=2.9'); import failed: {exc}"
        ) from None
    return ray


def _restore(saved: dict[str, str | None]) -> None:
    """Put environment variables back as `saved` says (None: unset)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[dict[str, str | None]]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield saved
    finally:
        _restore(saved)


@contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[tuple[Any, int, dict[str, str | None]]]:
    """Ray, connected (or already initialized by the caller: then left running), the number of workers, and
    the environment the actors should restore (what a local node's start changed)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray, workers or max(1, int(ray.cluster_resources().get("CPU", 1))), {}
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: say where, keep it short
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        restore: dict[str, str | None] = {}
    else:
        workers = workers or os.cpu_count() or 1
        with _environ(_LOCAL_ENV) as restore:
            # Read once at import; the variable alone is too late here.
            from ray._private import ray_constants

            cluster_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
            ray_constants.ENABLE_RAY_CLUSTER = False
            try:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         _node_ip_address="127.0.0.1", object_store_memory=128 * 1024 * 1024)
            finally:
                if cluster_flag is not None:
                    ray_constants.ENABLE_RAY_CLUSTER = cluster_flag
    try:
        yield ray, workers or max(1, int(ray.cluster_resources().get("CPU", 1))), restore
    finally:
        ray.shutdown()


class ScanWorker:
    """A Ray actor (made remote in `run_ray`): one Runtime, many batches."""

    def __init__(self, policy_bytes: bytes, policy_path: str, secret: bytes, explain: bool, cwd: str,
                 restore_env: dict[str, str | None]) -> None:
        import hashlib

        from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
        from privacy_proxy.runtime import Runtime

        _restore(restore_env)
        if os.path.isdir(cwd):
            os.chdir(cwd)  # relative paths in the policy mean what they mean to the driver
        text = policy_bytes.decode("utf-8")
        loaded = LoadedPolicy(parse_policy(text, policy_path), Path(policy_path), hashlib.sha256(policy_bytes).hexdigest())
        self._runtime = Runtime.build(loaded, secret)
        self._explain = explain

    def ready(self) -> bool:
        return True

    def scan(self, first_line: int, lines: tuple[str, ...]) -> str:
        from privacy_proxy.scan import scan_batch

        return scan_batch(first_line, lines, self._runtime, self._explain)


def run_ray(reader: InputReader, sink: Sink, *, policy_bytes: bytes, policy_path: str, secret: bytes,
            explain: bool = False, address: str | None = None, workers: int | None = None,
            on_batch: Callable[[Batch], None] | None = None) -> None:
    """Scan every batch of `reader` on Ray and write the outputs to `sink` in input order."""
    with ray_session(address, workers) as (ray, count, restore):
        remote = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(ScanWorker)
        actors = [remote.remote(policy_bytes, policy_path, secret, explain, os.getcwd(), restore) for _ in range(count)]
        try:
            _drive(ray, actors, reader, sink, on_batch)
        except ray.exceptions.RayError as exc:
            raise ConfigError(f"the Ray scan failed: {_first_line(str(exc))}") from None
        finally:
            for actor in actors:
                ray.kill(actor)
    sink.finish()


def _drive(ray: Any, actors: list[Any], reader: InputReader, sink: Sink,
           on_batch: Callable[[Batch], None] | None) -> None:
    ray.get([actor.ready.remote() for actor in actors])  # a policy the workers cannot build fails here
    batches = iter(reader)
    pending: dict[Any, tuple[Batch, int]] = {}  # object ref → (batch, actor index)
    load = [0] * len(actors)
    done: dict[int, tuple[Batch, str]] = {}
    next_index = 0
    exhausted = False
    while True:
        while not exhausted and len(pending) < IN_FLIGHT_PER_WORKER * len(actors):
            batch = next(batches, None)
            if batch is None:
                exhausted = True
                break
            slot = min(range(len(actors)), key=load.__getitem__)
            pending[actors[slot].scan.remote(batch.first_line, batch.lines)] = (batch, slot)
            load[slot] += 1
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            batch, slot = pending.pop(ref)
            load[slot] -= 1
            done[batch.index] = (batch, ray.get(ref))
        while next_index in done:
            batch, text = done.pop(next_index)
            sink.write(batch, text)
            if on_batch is not None:
                on_batch(batch)
            next_index += 1


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
