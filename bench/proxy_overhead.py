"""Proxy overhead: the full privacy pipeline vs calling the upstream directly, side by side.

Starts the fake upstream and `privacy-proxy serve` (policies/default.yaml) as processes on loopback,
then measures from this process:
  - non-stream latency p50/p99 for 1 KB and 32 KB prompts (unique prompts: no cache help; and a
    repeated prompt, as a chat's history is),
  - streaming time to first token,
  - time to read a whole 32 KB streamed answer of many small chunks,
  - requests/s at 1 KB with 16 concurrent clients,
and, in-process, where the proxy's time goes per stage. Not a test: prints a table (and --json).

    .venv/bin/python bench/proxy_overhead.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [
    "Please draft a reply to {mail} about the invoice we discussed on the phone at {phone}.",
    "The meeting with the regional team moved to Thursday; bring the quarterly figures and the draft.",
    "Our server at {ip} rejected the upload, so the customer asked us to retry after lunch.",
    "Summarize the attached notes in three bullet points and keep the tone friendly but precise.",
    "The applicant listed {mail} as contact and asked whether the position is still open.",
]


def prompt(size: int, salt: int) -> str:
    parts, index = [], 0
    while sum(map(len, parts)) < size:
        template = SENTENCES[index % len(SENTENCES)]
        parts.append(template.format(mail=f"user{salt}.{index}@example.com", phone=f"212-555-{(salt + index) % 10000:04d}",
                                     ip=f"10.{salt % 250}.{index % 250}.7") + " ")
        index += 1
    return "".join(parts)[:size]


def body(text: str, *, stream: bool = False, model: str = "bench") -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(client: httpx.Client, base: str, size: int, count: int, unique: bool) -> list[float]:
    times = []
    for i in range(count + 3):
        payload = body(prompt(size, i if unique else 0))
        start = time.perf_counter()
        response = client.post(f"{base}/chat/completions", json=payload)
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text
        if i >= 3:  # warm-up
            times.append(elapsed * 1000)
    return times


def first_token(client: httpx.Client, base: str, count: int) -> list[float]:
    times = []
    for i in range(count + 3):
        start = time.perf_counter()
        with client.stream("POST", f"{base}/chat/completions", json=body(prompt(200, i), stream=True)) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                    break
            elapsed = time.perf_counter() - start
        if i >= 3:
            times.append(elapsed * 1000)
    return times


def whole_stream(client: httpx.Client, base: str, size: int, count: int) -> tuple[list[float], int]:
    times, events = [], 0
    for _ in range(count + 1):
        start = time.perf_counter()
        with client.stream("POST", f"{base}/chat/completions", json=body("go", stream=True, model=f"answer-{size}")) as r:
            events = sum(1 for line in r.iter_lines() if line.startswith("data: "))
        times.append((time.perf_counter() - start) * 1000)
    return times[1:], events


async def throughput(base: str, size: int, concurrency: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker(offset: int) -> None:
            nonlocal done
            i = offset
            while time.perf_counter() < deadline:
                response = await client.post(f"{base}/chat/completions", json=body(prompt(size, i % 64)))
                assert response.status_code == 200
                done += 1
                i += concurrency
        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return done / (time.perf_counter() - start)


def wrk_throughput(base: str, size: int, connections: int, seconds: float, workdir: Path) -> float | None:
    """Requests/s from `wrk` (a C load generator that leaves the CPU to the servers), if installed."""
    if shutil.which("wrk") is None:
        return None
    body_file = workdir / f"body{size}.json"
    body_file.write_text(json.dumps(body(prompt(size, 7))))
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "r"); wrk.body = f:read("*a"); f:close()\n'
    )
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), f"{base}/chat/completions"],
        capture_output=True, text=True, check=True,
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk saw errors:\n{result.stdout}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("Requests/sec"))
    return round(float(line.split()[1]), 1)


def stage_profile(sizes: list[int]) -> dict[str, dict[str, float]]:
    """Where the time goes, per stage, in-process (ms per request, median of runs)."""
    from privacy_proxy.openai.chat import AnswerRestorer, ChatRequest
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import Runtime
    from sanitizers.guard import find_leaks

    runtime = Runtime.build(load_policy(ROOT / "policies/default.yaml"), b"k" * 32)
    result: dict[str, dict[str, float]] = {}
    for size in sizes:
        runs: dict[str, list[float]] = {}
        for i in range(15):
            raw = json.dumps(body(prompt(size, 1000 + i))).encode()
            marks = [time.perf_counter()]
            parsed = json.loads(raw)
            request = ChatRequest(parsed)
            marks.append(time.perf_counter())
            texts = [s.text for s in request.segments]
            detections = [runtime.detector.analyze(t) for t in texts]
            marks.append(time.perf_counter())
            [runtime.detector.analyze(t) for t in texts]
            marks.append(time.perf_counter())
            decided = [runtime.rules.decide(list(d)) for d in detections]
            transformed = runtime.transformer.apply(texts, decided)
            marks.append(time.perf_counter())
            outbound = request.outbound(transformed.texts)
            find_leaks(outbound, transformed.mapping.protected)
            marks.append(time.perf_counter())
            json.dumps(outbound, ensure_ascii=False)
            AnswerRestorer(transformed.mapping.restorable).text.restore(transformed.texts[0])
            marks.append(time.perf_counter())
            names = ["parse+extract", "detect (uncached)", "detect (cached)", "decide+transform", "leak guard", "serialize+restore"]
            for name, (a, b) in zip(names, zip(marks, marks[1:])):
                runs.setdefault(name, []).append((b - a) * 1000)
        result[f"{size // 1024} KB"] = {name: round(statistics.median(v), 3) for name, v in runs.items()}
    return result


def start_upstream(workdir: Path) -> tuple[subprocess.Popen, str]:
    url_file = workdir / "upstream.url"
    upstream = subprocess.Popen([sys.executable, str(ROOT / "bench/bench_upstream.py"), str(url_file)])
    while not url_file.exists() or not url_file.read_text():
        time.sleep(0.05)
    return upstream, url_file.read_text()


def start_proxy(workdir: Path, policy: Path, upstream: str, port: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PRIVACY_PROXY_AUDIT_KEY": "ab" * 32, "OPENAI_API_KEY": "sk-bench"}
    proxy = subprocess.Popen(
        [sys.executable, "-m", "privacy_proxy.cli", "serve", "--policy", str(policy), "--port", str(port),
         "--upstream", upstream, "--log-level", "warning", "--audit-log", str(workdir / f"audit-{port}.jsonl")],
        cwd=workdir, env=env,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proxy, f"http://127.0.0.1:{port}/v1"


def bare_routing_policy(workdir: Path) -> Path:
    """The default policy with detection narrowed to one trivial recognizer: the cost of routing alone."""
    text = (ROOT / "policies/default.yaml").read_text().replace("  recognizers: []", "  recognizers: []\n  entities: [CRYPTO]")
    path = workdir / "bare.yaml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    n_small, n_large, seconds = (30, 8, 2.0) if args.quick else (300, 40, 8.0)
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        upstream, direct = start_upstream(Path(tmp))
        proxy, via_proxy = start_proxy(Path(tmp), ROOT / "policies/default.yaml", direct, 18787)
        processes = [upstream, proxy]
        try:
            with httpx.Client(timeout=60) as client:
                for label, base in (("direct", direct), ("proxy", via_proxy)):
                    row: dict[str, object] = {}
                    for size, count in ((1024, n_small), (32768, n_large)):
                        for unique in (True, False):
                            times = latency(client, base, size, count, unique)
                            key = f"{size // 1024}KB {'unique' if unique else 'repeated'}"
                            row[key] = {"p50_ms": round(percentile(times, 0.5), 2), "p99_ms": round(percentile(times, 0.99), 2)}
                    ttft = first_token(client, base, n_small)
                    row["ttft_p50_ms"] = round(percentile(ttft, 0.5), 2)
                    stream_times, events = whole_stream(client, base, 32768, max(3, n_large // 4))
                    row["stream_32KB_ms"] = round(statistics.median(stream_times), 1)
                    row["stream_32KB_events"] = events
                    row["rps_1KB_16_clients"] = round(asyncio.run(throughput(base, 1024, 16, seconds)), 1)
                    row["rps_1KB_16_connections_wrk"] = wrk_throughput(base, 1024, 16, seconds, Path(tmp))
                    report[label] = row
            bare, via_bare = start_proxy(Path(tmp), bare_routing_policy(Path(tmp)), direct, 18788)
            processes.append(bare)
            report["proxy_bare_routing"] = {
                "rps_1KB_16_connections_wrk": wrk_throughput(via_bare, 1024, 16, seconds, Path(tmp))
            }
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
    report["stages_ms"] = stage_profile([1024, 32768])
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
