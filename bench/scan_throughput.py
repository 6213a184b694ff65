"""Batch scanning throughput: lines/s of `scan`'s local engine vs the Ray engine with 1 and 2 workers.

The input is JSONL built from the shared data sets: presidio synth v2 texts and PUPA user queries as `text`
lines, every fifth line a two-turn `messages` conversation. Each engine scans the same lines with the same policy
and secret; the outputs must be byte-identical (the run fails otherwise).

Reported per engine: wall seconds including start-up (Ray node, actors building the Runtime), and steady
lines/s after the first batch came back (start-up and warm-up excluded).

    .venv/bin/python bench/scan_throughput.py [DATA] [--lines N] [--batch-size N] [--policy FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privacy_proxy.policy.loader import load_policy  # noqa: E402
from privacy_proxy.runtime import Runtime, derive_secret  # noqa: E402
from privacy_proxy.scan_batch import Batch, InputReader, StreamSink, run_local  # noqa: E402

SECRET = derive_secret(b"bench-scan-throughput")


def build_lines(data: Path, count: int) -> list[str]:
    synth = json.loads((data / "presidio_synth" / "synth_dataset_v2.json").read_text(encoding="utf-8"))
    texts_a = [row["full_text"] for row in synth]
    csv.field_size_limit(1 << 24)
    with open(data / "pupa" / "PUPA_New.csv", encoding="utf-8", newline="") as f:
        texts_b = [row["user_query"] for row in csv.DictReader(f)]
    lines = []
    for i in range(count):
        source = texts_a if i % 2 == 0 else texts_b
        text = source[(i // 2) % len(source)]
        if i % 5 == 4:
            reply = texts_a[(i * 7) % len(texts_a)]
            item: dict[str, Any] = {"id": i, "messages": [{"role": "user", "content": text},
                                                          {"role": "assistant", "content": reply}]}
        else:
            item = {"id": i, "text": text}
        lines.append(json.dumps(item, ensure_ascii=False) + "\n")
    return lines


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.first_lines = 0

    def on_batch(self, batch: Batch) -> None:
        if self.first is None:
            self.first, self.first_lines = time.perf_counter(), len(batch.lines)

    def result(self, lines: int) -> dict[str, float]:
        end = time.perf_counter()
        steady = (lines - self.first_lines) / (end - self.first) if self.first and end > self.first else 0.0
        return {"wall_s": round(end - self.start, 2), "lines_per_s_wall": round(lines / (end - self.start), 1),
                "lines_per_s_steady": round(steady, 1)}


def bench_local(policy: Path, lines: list[str], batch_size: int) -> tuple[dict[str, float], str]:
    clock = Clock()
    runtime = Runtime.build(load_policy(policy), SECRET)
    out = io.StringIO()
    run_local(InputReader(lines, batch_size), runtime, StreamSink(out), on_batch=clock.on_batch)
    return clock.result(len(lines)), out.getvalue()


def bench_ray(policy: Path, lines: list[str], batch_size: int, workers: int) -> tuple[dict[str, float], str]:
    from privacy_proxy.scan_ray import ray_session, run_ray

    clock = Clock()
    out = io.StringIO()
    with ray_session(None, workers):
        started = time.perf_counter() - clock.start
        run_ray(InputReader(lines, batch_size), StreamSink(out), policy_bytes=policy.read_bytes(),
                policy_path=str(policy), secret=SECRET, workers=workers, on_batch=clock.on_batch)
        result = clock.result(len(lines))
    return {**result, "ray_init_s": round(started, 2)}, out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--policy", type=Path, default=ROOT / "policies" / "default.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to measure")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "scan_throughput.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    lines = build_lines(args.data, args.lines)
    chars = sum(len(line) for line in lines)
    rows: dict[str, Any] = {}
    rows["local"], expected = bench_local(args.policy, lines, args.batch_size)
    print(f"local      {rows['local']}", flush=True)
    for workers in args.workers:
        name = f"ray_{workers}_worker{'s' if workers > 1 else ''}"
        rows[name], output = bench_ray(args.policy, lines, args.batch_size, workers)
        rows[name]["identical_to_local"] = output == expected
        print(f"{name:<10} {rows[name]}", flush=True)
        if output != expected:
            print(f"{name}: output differs from the local engine", file=sys.stderr)
            return 1
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "data": str(args.data),
              "policy": str(args.policy.relative_to(ROOT) if args.policy.is_relative_to(ROOT) else args.policy),
              "lines": len(lines), "input_chars": chars, "batch_size": args.batch_size, "cpus": os.cpu_count(),
              "engines": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
