"""Cold start and memory of the proxy process, per NER tier.

For each `--ner` spec: start `privacy-proxy serve` (policies/default.yaml with detection.ner
overridden) in front of the bench upstream, time until `/healthz` answers 200 (detectors built and
warmed up), send `--requests` unique 1 KB chat prompts, then read the process's resident memory
(VmRSS) and its peak (VmHWM) from /proc. Targets: ≤ 3 s to ready, ≤ 600 MB RSS.

    .venv/bin/python bench/startup.py [--ner builtin builtin:fast none] [--requests 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import ROOT, body, prompt, start_proxy, start_upstream  # noqa: E402


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def policy_with(ner: str, workdir: Path) -> Path:
    policy = yaml.safe_load((ROOT / "policies/default.yaml").read_text())
    policy["detection"]["ner"] = ner
    path = workdir / f"policy-{ner.replace(':', '-')}.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def measure(ner: str, upstream: str, workdir: Path, port: int, requests: int) -> dict:
    started = time.perf_counter()
    proxy, base = start_proxy(workdir, policy_with(ner, workdir), upstream, port)
    ready = time.perf_counter() - started
    try:
        with httpx.Client(timeout=60) as client:
            for number in range(requests):
                response = client.post(f"{base}/chat/completions", json=body(prompt(1000, number)))
                response.raise_for_status()
        return {"ner": ner, "ready_s": round(ready, 2), **memory_mb(proxy.pid)}
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", nargs="+", default=["builtin", "builtin:fast", "none"])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream, url = start_upstream(workdir)
        try:
            for offset, ner in enumerate(args.ner):
                results.append(measure(ner, url, workdir, 18900 + offset, args.requests))
                print(json.dumps(results[-1]))
        finally:
            upstream.terminate()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
