"""`privacy-proxy audit report LOG`: what the proxy decided, from its audit log (all rotated files).

One pass over the records builds a plain dict (the `json` format); `text` and `html` render it. The HTML
page is self-contained: inline CSS and SVG charts, no script, no external fetch. Records hold no raw
values, so neither does the report; every label is escaped.
"""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from privacy_proxy.audit_verify import iter_records

__all__ = ["build_report", "render_html", "render_text"]

DECISION_COLOURS = {
    "forward": "#2e7d32", "block": "#c62828", "reject": "#ef6c00", "error": "#6a1b9a",
    "passthrough": "#546e7a", "forward_unscanned": "#b71c1c",
}
_PALETTE = ["#1565c0", "#00838f", "#558b2f", "#f9a825", "#8e24aa", "#d84315", "#37474f", "#ad1457"]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def build_report(path: Path) -> dict[str, Any]:
    decisions: Counter[str] = Counter()
    strategies: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    block_reasons: Counter[str] = Counter()
    blocked_entities: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    clients: Counter[str] = Counter()
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    timeline: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: list[float] = []
    files: set[str] = set()
    times: list[str] = []
    insecure = 0
    for file, _, record in iter_records(path):
        files.add(file.name)
        if "event" in record or "decision" not in record:
            continue  # file_start and other bookkeeping records
        decision = str(record.get("decision"))
        when = str(record.get("time", ""))
        times.append(when)
        decisions[decision] += 1
        strategies[str(record.get("strategy", decision))] += 1
        routes[str(record.get("route", "?"))] += 1
        for entity, count in (record.get("entities") or {}).items():
            if isinstance(count, int):
                entities[entity] += count
                if decision == "block":
                    blocked_entities[entity] += count
        for entity, action in (record.get("actions") or {}).items():
            actions[f"{entity} → {action}"] += 1
        if decision == "block":
            block_reasons[str(record.get("reason") or "unknown")] += 1
        if record.get("fault"):
            faults[str(record["fault"])] += 1
        statuses[str(record.get("upstream_status"))] += 1
        if record.get("client"):
            clients[str(record["client"])] += 1
        if record.get("insecure_upstream"):
            insecure += 1
        policy = record.get("policy") or {}
        key = (str(policy.get("name", "?")), str(policy.get("sha256", "")))
        entry = policies.setdefault(key, {"name": key[0], "sha256": key[1], "requests": 0, "first": when, "last": when,
                                          "decisions": Counter()})
        entry["requests"] += 1
        entry["first"], entry["last"] = min(entry["first"], when), max(entry["last"], when)
        entry["decisions"][decision] += 1
        if isinstance(record.get("latency_ms"), (int, float)):
            latencies.append(float(record["latency_ms"]))
        timeline[when].update([decision])
    first, last = (min(times), max(times)) if times else (None, None)
    bucket = "hour" if first and last and _hours_between(first, last) <= 48 else "day"
    width = 13 if bucket == "hour" else 10
    buckets: dict[str, Counter[str]] = defaultdict(Counter)
    for when, counts in timeline.items():
        buckets[when[:width]].update(counts)
    return {
        "log": str(path),
        "files": len(files),
        "requests": sum(decisions.values()),
        "first": first,
        "last": last,
        "decisions": dict(decisions.most_common()),
        "strategies": dict(strategies.most_common()),
        "routes": dict(routes.most_common()),
        "entities": dict(entities.most_common()),
        "actions": dict(actions.most_common()),
        "blocks": {"total": decisions.get("block", 0), "by_reason": dict(block_reasons.most_common()),
                   "by_entity": dict(blocked_entities.most_common())},
        "faults": dict(faults.most_common()),
        "upstream_status": dict(statuses.most_common()),
        "clients": dict(clients.most_common()),
        "insecure_upstream_requests": insecure,
        "policies": [
            {**entry, "decisions": dict(entry["decisions"].most_common())}
            for entry in sorted(policies.values(), key=lambda e: e["first"])
        ],
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95),
                       "max": max(latencies) if latencies else None},
        "timeline": {"bucket": bucket, "series": [{"start": start, "decisions": dict(counts), "total": sum(counts.values())}
                                                  for start, counts in sorted(buckets.items())]},
    }


def _hours_between(first: str, last: str) -> float:
    from datetime import datetime

    try:
        a = datetime.fromisoformat(first.replace("Z", "+00:00"))
        b = datetime.fromisoformat(last.replace("Z", "+00:00"))
    except ValueError:
        return 1e9
    return (b - a).total_seconds() / 3600


# --- text ---------------------------------------------------------------------------------------------


def _table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"{title}: none", ""]
    width = max(len(k) for k in counts)
    return [f"{title}:", *(f"  {k.ljust(width)}  {v:>8}" for k, v in counts.items()), ""]


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"audit report: {report['log']} ({report['files']} file(s))",
        f"requests: {report['requests']}  from {report['first'] or '-'} to {report['last'] or '-'}",
        f"latency ms: p50 {report['latency_ms']['p50']}  p95 {report['latency_ms']['p95']}  max {report['latency_ms']['max']}",
        "",
    ]
    lines += _table("decisions", report["decisions"])
    lines += _table("strategies", report["strategies"])
    lines += _table("entities (detected, by type)", report["entities"])
    lines += _table("blocks by reason", report["blocks"]["by_reason"])
    lines += _table("blocked entities", report["blocks"]["by_entity"])
    lines += _table("faults", report["faults"])
    lines += _table("routes", report["routes"])
    if report["clients"]:
        lines += _table("clients (access keys)", report["clients"])
    if report["insecure_upstream_requests"]:
        lines += [f"requests over an insecure (plain http) upstream: {report['insecure_upstream_requests']}", ""]
    lines.append("policy versions:")
    for entry in report["policies"]:
        spread = ", ".join(f"{k} {v}" for k, v in entry["decisions"].items())
        lines.append(f"  {entry['name']} {entry['sha256'][:12]}  {entry['requests']} requests "
                     f"({entry['first']} .. {entry['last']}): {spread}")
    lines += ["", f"over time (per {report['timeline']['bucket']}):"]
    for point in report["timeline"]["series"]:
        spread = ", ".join(f"{k} {v}" for k, v in sorted(point["decisions"].items()))
        lines.append(f"  {point['start']}  {point['total']:>6}  {spread}")
    return "\n".join(lines) + "\n"


# --- html ---------------------------------------------------------------------------------------------


def _colour(label: str, index: int) -> str:
    return DECISION_COLOURS.get(label, _PALETTE[index % len(_PALETTE)])


def _bars(title: str, counts: dict[str, int], limit: int = 20) -> str:
    items = list(counts.items())[:limit]
    if not items:
        return f"<section><h2>{html.escape(title)}</h2><p class=none>none</p></section>"
    top = max(v for _, v in items) or 1
    row, label_w, bar_w = 22, 220, 420
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{label_w + bar_w + 70}" '
             f'height="{row * len(items) + 4}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = max(1, round(bar_w * value / top))
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w}" height="{row - 6}" fill="{_colour(label, i)}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 15}">{value}</text>'
        )
    parts.append("</svg>")
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def _timeline(report: dict[str, Any]) -> str:
    series = report["timeline"]["series"]
    title = f"Requests over time (per {report['timeline']['bucket']})"
    if not series:
        return f"<section><h2>{html.escape(title)}</h2><p class=none>none</p></section>"
    kinds = list(dict.fromkeys(k for p in series for k in sorted(p["decisions"])))
    top = max(p["total"] for p in series) or 1
    height, col = 200, max(8, min(40, 640 // len(series)))
    width = col * len(series) + 60
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height + 40}" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="40" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>',
             f'<text x="36" y="12" text-anchor="end">{top}</text><text x="36" y="{height}" text-anchor="end">0</text>']
    for i, point in enumerate(series):
        x, y = 44 + i * col, height
        for j, kind in enumerate(kinds):
            value = point["decisions"].get(kind, 0)
            if value:
                h = height * value / top
                y -= h
                parts.append(f'<rect x="{x}" y="{y:.1f}" width="{col - 3}" height="{h:.1f}" fill="{_colour(kind, j)}">'
                             f'<title>{html.escape(point["start"])} {html.escape(kind)}: {value}</title></rect>')
    parts.append(f'<text x="44" y="{height + 16}">{html.escape(series[0]["start"])}</text>')
    parts.append(f'<text x="{width}" y="{height + 32}" text-anchor="end">{html.escape(series[-1]["start"])}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{_colour(k, j)}"></i>{html.escape(k)}</span>' for j, k in enumerate(kinds))
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}<div class=legend>{legend}</div></section>"


def _policy_table(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e['name'])}</td><td><code>{html.escape(e['sha256'][:16])}</code></td>"
        f"<td>{e['requests']}</td><td>{html.escape(e['first'])}</td><td>{html.escape(e['last'])}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in e['decisions'].items()))}</td></tr>"
        for e in report["policies"]
    )
    return ("<section><h2>Policy versions</h2><table><tr><th>name</th><th>sha256</th><th>requests</th><th>first</th>"
            f"<th>last</th><th>decisions</th></tr>{rows}</table></section>")


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}svg text{font-size:12px;fill:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.5em}.legend span{margin-right:1em}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px}.none{color:#777}"""


def render_html(report: dict[str, Any]) -> str:
    cards = [("requests", report["requests"]), ("blocked", report["blocks"]["total"]),
             ("faults", sum(report["faults"].values())), ("policy versions", len(report["policies"])),
             ("p95 latency ms", report["latency_ms"]["p95"])]
    card_html = "".join(f"<div class=card><b>{html.escape(str(v))}</b>{html.escape(k)}</div>" for k, v in cards)
    sections = [
        _timeline(report),
        _bars("Decisions", report["decisions"]),
        _bars("Strategies", report["strategies"]),
        _bars("Entities detected, by type", report["entities"]),
        _bars("Blocks by reason", report["blocks"]["by_reason"]),
        _bars("Blocked entity types", report["blocks"]["by_entity"]),
        _bars("Faults", report["faults"]),
        _policy_table(report),
    ]
    if report["clients"]:
        sections.append(_bars("Requests by access key", report["clients"]))
    data = html.escape(json.dumps(report, ensure_ascii=True))
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>privacy-proxy audit report</title><style>{_CSS}</style></head><body>"
        f"<h1>privacy-proxy audit report</h1><p>{html.escape(report['log'])} · {report['files']} file(s) · "
        f"{html.escape(str(report['first']))} → {html.escape(str(report['last']))}</p>"
        f"<div class=cards>{card_html}</div>{''.join(sections)}"
        f'<details><summary>Data (JSON)</summary><pre id="data">{data}</pre></details></body></html>\n'
    )
