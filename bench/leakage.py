"""Leakage and retention on PUPA (PAPILLON's private user prompts), through `privacy-proxy scan`.

    .venv/bin/python bench/leakage.py [--data PATH/PUPA_New.csv] [--policy NAME=FILE[@STRATEGY] ...]
                                      [--limit N] [--json OUT]

For every row given (default: the rules-only rows below) the queries go through the real `privacy-proxy scan`
command, which applies the policy's strategy; what it says would leave the machine (`outbound`) is compared
with the query's PII units. `@STRATEGY` runs the policy with its `strategy:` replaced (forward, abstract,
split, local). A policy with an `slm:` section makes an SLM row (abstract with `abstraction.use_slm`).

Default rows: pseudonymize / abstract / split with policies/default.yaml, and the same three with
policies/minimal-disclosure.yaml (the high-recall rules). No SLM rows by default: no real local model ships
here (a tiny test model would only prove the plumbing), so SLM figures need `--policy` with your own.

- leakage: the fraction of a query's PII units found, case-insensitively, in what would leave,
  averaged over queries. Units that are already `<PRESIDIO_ANONYMIZED_*>` placeholders in the query
  (PUPA's own redaction) are skipped, and so are queries with no unit left.
- retention: the fraction of the query's other words (lower-cased word tokens not inside any PII unit)
  still present in what would leave, averaged over the same queries.

A blocked query leaks nothing and retains nothing; so does one answered locally (`local`, counted apart).
The `raw` row is the query itself (nothing removed). The `oracle` row is perfect detection at word
granularity: every annotated unit replaced wherever it stands as a whole word (case-insensitive, longest
first). What it still leaks is the metric's floor for any detector that replaces words, not letters inside
them: units of a letter or two ("ee", "la", "k") are found inside the words that remain ("employee"), and so
are units that are part of a longer word.
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

import yaml

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


def oracle_redaction(query: dict[str, Any]) -> str:
    """The query with every annotated unit replaced where it stands as a whole word, as a perfect detector would."""
    alternatives = (rf"(?<![A-Za-z0-9]){re.escape(u)}(?![A-Za-z0-9])" for u in sorted(query["units"], key=len, reverse=True))
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    return pattern.sub("[PII]", query["text"])


def kept_words(query: str, units: list[str]) -> set[str]:
    """The query's words outside every PII unit."""
    unit_words = {w for unit in units for w in WORD.findall(unit)}
    return {w for w in WORD.findall(query.lower()) if w not in unit_words and not PLACEHOLDER.fullmatch(w)}


DEFAULT_ROWS = (
    "pseudonymize=policies/default.yaml",
    "abstract=policies/default.yaml@abstract",
    "split=policies/default.yaml@split",
    "pseudonymize-minimal=policies/minimal-disclosure.yaml",
    "abstract-minimal=policies/minimal-disclosure.yaml@abstract",
    "split-minimal=policies/minimal-disclosure.yaml@split",
)
STRATEGIES = ("forward", "abstract", "split", "local", "block")


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


def run_scan(policy: Path, queries: list[dict[str, Any]],
             strategy: str | None = None) -> tuple[dict[str, str | None], float, dict[str, int]]:
    """Outbound text per query id from `privacy-proxy scan` (None when blocked or answered locally), the
    time it took, and how many queries ended in each decision / fallback."""
    with tempfile.TemporaryDirectory() as workdir:
        if strategy is not None:
            document = yaml.safe_load(policy.read_text(encoding="utf-8"))
            document["strategy"] = strategy
            policy = Path(workdir) / f"{policy.stem}-{strategy}.yaml"
            policy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
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
    counts: dict[str, int] = defaultdict(int)
    for line in done.stdout.splitlines():
        result = json.loads(line)
        counts[f"decision:{result['decision']}"] += 1
        for fallback in result.get("fallback") or []:
            counts[f"fallback:{fallback}"] += 1
        outbound[result["id"]] = None if result["decision"] in ("block", "local") else "\n".join(result["outbound"])
    return outbound, elapsed, dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PUPA_New.csv, or a directory holding it")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=FILE[@STRATEGY]",
                        help="a row: name and policy file, optionally with another strategy (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    data = args.data / "pupa" / "PUPA_New.csv" if args.data.is_dir() and args.data.name != "pupa" else args.data
    if data.is_dir():
        data = data / "PUPA_New.csv"
    queries = load_queries(data, args.limit)
    rows: dict[str, Any] = {"raw": score(queries, {q["id"]: q["text"] for q in queries}),
                            "oracle": score(queries, {q["id"]: oracle_redaction(q) for q in queries})}
    for spec in args.policy or DEFAULT_ROWS:
        name, _, target = spec.partition("=")
        file, _, strategy = target.partition("@")
        if not file:
            parser.error(f"--policy {spec!r}: expected NAME=FILE[@STRATEGY]")
        if strategy and strategy not in STRATEGIES:
            parser.error(f"--policy {spec!r}: the strategy is one of {', '.join(STRATEGIES)}")
        path = Path(file) if Path(file).is_absolute() or Path(file).exists() else ROOT / file
        outbound, elapsed, counts = run_scan(path, queries, strategy or None)
        rows[name] = {**score(queries, outbound), "policy": file, "strategy": strategy or "(policy's)",
                      "outcomes": counts, "scan_seconds": round(elapsed, 1)}
    print(f"{'row':<22} {'leakage':>8} {'retention':>9} {'blocked':>7}  queries={len(queries)}")
    for name, row in rows.items():
        print(f"{name:<22} {row['leakage']:>8.1%} {row['retention']:>9.1%} {row['blocked']:>7}")
    if args.json:
        report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "data": str(data),
                  "note": "rules-only rows: no real local SLM is available here, so no SLM rows were measured",
                  "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
