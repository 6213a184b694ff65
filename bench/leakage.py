"""Leakage and retention on PUPA (PAPILLON's private user prompts), through `privacy-proxy scan`.

    .venv/bin/python bench/leakage.py [--data PATH/PUPA_New.csv] [--policy NAME=FILE ...] [--limit N]
                                      [--json OUT]

For every policy given (default: pseudonymize=policies/default.yaml) the queries go through the real
`privacy-proxy scan` command; what it says would leave the machine (`outbound`) is compared with the
query's PII units:

- leakage: the fraction of a query's PII units found, case-insensitively, in what would leave,
  averaged over queries. Units that are already `<PRESIDIO_ANONYMIZED_*>` placeholders in the query
  (PUPA's own redaction) are skipped, and so are queries with no unit left.
- retention: the fraction of the query's other words (lower-cased word tokens not inside any PII unit)
  still present in what would leave, averaged over the same queries.

A blocked query leaks nothing and retains nothing. The `raw` row is the query itself (nothing removed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pupa" / "PUPA_New.csv"
PLACEHOLDER = re.compile(r"<?presidio_anonymized_\w+>?")
WORD = re.compile(r"\w+")


def load_queries(path: Path, limit: int | None) -> list[dict[str, Any]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    queries = []
    for number, row in enumerate(rows[:limit] if limit else rows):
        units = [u.strip().lower() for u in row["pii_units"].split("||") if u.strip()]
        units = [u for u in dict.fromkeys(units) if not PLACEHOLDER.fullmatch(u)]
        if units:
            queries.append({"id": f"{number}:{row['conversation_hash']}", "text": row["user_query"], "units": units,
                            "category": row.get("predicted_category", "")})
    return queries


def kept_words(query: str, units: list[str]) -> set[str]:
    """The query's words outside every PII unit."""
    unit_words = {w for unit in units for w in WORD.findall(unit)}
    return {w for w in WORD.findall(query.lower()) if w not in unit_words and not PLACEHOLDER.fullmatch(w)}


def score(queries: list[dict[str, Any]], outbound: dict[str, str | None]) -> dict[str, Any]:
    leak_sum = retain_sum = 0.0
    blocked = 0
    by_category: dict[str, list[float]] = defaultdict(list)
    for query in queries:
        sent = outbound.get(query["id"])
        if sent is None:
            blocked += 1
            leaked, retained = 0.0, 0.0
        else:
            lowered = sent.lower()
            leaked = sum(unit in lowered for unit in query["units"]) / len(query["units"])
            words = kept_words(query["text"], query["units"])
            present = set(WORD.findall(lowered))
            retained = sum(w in present for w in words) / len(words) if words else 1.0
        leak_sum += leaked
        retain_sum += retained
        by_category[query["category"]].append(leaked)
    count = len(queries)
    return {
        "queries": count,
        "leakage": round(leak_sum / count, 4),
        "retention": round(retain_sum / count, 4),
        "blocked": blocked,
        "leakage_by_category": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_category.items())},
    }


def run_scan(policy: Path, queries: list[dict[str, Any]]) -> tuple[dict[str, str | None], float]:
    """Outbound text per query id from `privacy-proxy scan` (None when blocked)."""
    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir) / "queries.jsonl"
        source.write_text("".join(json.dumps({"id": q["id"], "text": q["text"]}) + "\n" for q in queries))
        env = {**os.environ, "PRIVACY_PROXY_AUDIT_KEY": os.environ.get("PRIVACY_PROXY_AUDIT_KEY", "0f" * 32)}
        command = [sys.executable, "-m", "privacy_proxy.cli", "scan", "--policy", str(policy.resolve()), str(source)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"scan failed with {policy}:\n{done.stderr[-2000:]}")
    outbound: dict[str, str | None] = {}
    for line in done.stdout.splitlines():
        result = json.loads(line)
        outbound[result["id"]] = None if result["decision"] == "block" else "\n".join(result["outbound"])
    return outbound, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PUPA_New.csv, or a directory holding it")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=FILE",
                        help="a row: name and policy file (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    data = args.data / "pupa" / "PUPA_New.csv" if args.data.is_dir() and not args.data.name == "pupa" else args.data
    if data.is_dir():
        data = data / "PUPA_New.csv"
    queries = load_queries(data, args.limit)
    rows: dict[str, Any] = {"raw": score(queries, {q["id"]: q["text"] for q in queries})}
    policies = args.policy or [f"pseudonymize={ROOT / 'policies' / 'default.yaml'}"]
    for spec in policies:
        name, _, file = spec.partition("=")
        if not file:
            parser.error(f"--policy {spec!r}: expected NAME=FILE")
        outbound, elapsed = run_scan(Path(file), queries)
        rows[name] = {**score(queries, outbound), "policy": file, "scan_seconds": round(elapsed, 1)}
    print(f"{'row':<16} {'leakage':>8} {'retention':>9} {'blocked':>7}  queries={len(queries)}")
    for name, row in rows.items():
        print(f"{name:<16} {row['leakage']:>8.1%} {row['retention']:>9.1%} {row['blocked']:>7}")
    if args.json:
        report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "data": str(data), "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
