"""Pattern tier vs Presidio: speed and recall on the same texts.

    .venv/bin/python bench/patterns.py [--data PATH] [--samples N] [--repeat R] [--out PATH]

Engines
-------
- ``presidio``: Presidio's `AnalyzerEngine` with its predefined English recognizers minus the NER one,
  on the blank spaCy pipeline (`sanitizers.presidio_engine.build_presidio_analyzer`), threshold 0.
- ``tier``: `sanitizers.recognizers.PatternTier(languages=("en",))`. Its phone-number memo is cleared
  before every pass, so no pass profits from numbers parsed in an earlier one.

Corpora
-------
- ``synth``: the first N texts of presidio-research's synthetic dataset (short, dense with PII).
- ``chat``: ~1 KB chat-like texts: dataset texts in order, interleaved with fixed conversational lines
  ("User: …" / "Assistant: …"), cut at the first line ending after 1,000 characters; N / 10 of them.

Speed: single-threaded, each engine analyzes the whole corpus `repeat` times, one text after the
other; the fastest pass (CPU time) counts. Builds and one warm-up pass over the corpus are excluded
(warm-up fills lazily compiled patterns on both sides). chars/s = characters / pass time.

Recall: every (entity, start, end) Presidio reports with score ≥ 0.4 is looked up among the tier's
results (score ≥ 0.4 too). Misses are listed by kind: ``url_in_email`` and ``nhs_on_us_phone`` are
the tier's documented false-positive fixes; anything else is a real miss.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privacy_proxy.policy.loader import load_policy
from sanitizers.presidio_engine import build_presidio_analyzer
from sanitizers.recognizers import PatternTier
from sanitizers.recognizers.validators import is_us_phone

DEFAULT_DATA = Path("/work/shared/data/presidio_synth/synth_dataset_v2.json")
THRESHOLD = 0.4
FILLER = (
    "User: Hi, I need some help drafting a reply to a customer. Here is what they wrote:",
    "Assistant: Sure, happy to help. Could you share the details you want to include?",
    "User: Please keep it short and friendly, and mention that we will follow up next week.",
    "Assistant: Understood. I will also summarise the main points so nothing gets lost.",
    "User: Also add the reference details below so the team can find the case quickly.",
    "Assistant: Here is a draft you can adapt before sending it out to the customer today.",
)


def load_texts(path: Path, samples: int) -> list[str]:
    records = json.loads(path.read_text(encoding="utf-8"))
    return [record["full_text"] for record in records[:samples]]


def chat_texts(texts: list[str], count: int) -> list[str]:
    """~1 KB conversations: dataset texts between fixed filler lines, in order."""
    built: list[str] = []
    lines: list[str] = []
    size = 0
    for number, text in enumerate(texts * 10):
        for line in (FILLER[number % len(FILLER)], f"User: {text}"):
            lines.append(line)
            size += len(line) + 1
        if size >= 1000:
            built.append("\n".join(lines))
            lines, size = [], 0
            if len(built) == count:
                break
    return built


def time_passes(analyze: Callable[[str], Any], texts: list[str], repeat: int,
                before: Callable[[], None] = lambda: None) -> tuple[float, list[Any]]:
    """The fastest of `repeat` passes (CPU seconds), and the last pass's results."""
    best = float("inf")
    results: list[Any] = []
    for _ in range(repeat):
        before()
        started = time.process_time()
        results = [analyze(text) for text in texts]
        best = min(best, time.process_time() - started)
    return best, results


def miss_kind(text: str, entity: str, start: int, end: int, tier_spans: set[tuple[str, int, int]]) -> str:
    if entity == "URL" and any(e == "EMAIL_ADDRESS" and s <= start and end <= f for e, s, f in tier_spans):
        return "url_in_email"
    if entity == "UK_NHS" and is_us_phone(text[start:end]):
        return "nhs_on_us_phone"
    return "other"


def compare(texts: list[str], presidio: list[Any], tier: list[Any],
            threshold: Callable[[str], float] = lambda entity: THRESHOLD) -> dict[str, Any]:
    wanted = found = 0
    misses: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    extra = 0
    for text, theirs, ours in zip(texts, presidio, tier):
        ours_ok = {(d.entity, d.start, d.end) for d in ours if d.score >= threshold(d.entity)}
        spans = {(d.entity, d.start, d.end) for d in ours}
        theirs_ok = {(r.entity_type, r.start, r.end) for r in theirs if r.score >= threshold(r.entity_type)}
        for key in theirs_ok:
            wanted += 1
            if key in ours_ok:
                found += 1
                continue
            kind = miss_kind(text, *key, spans)
            misses[kind] += 1
            if kind == "other" and len(examples) < 20:
                examples.append({"entity": key[0], "value": text[key[1] : key[2]]})
        extra += len(ours_ok - theirs_ok)
    fixed = sum(count for kind, count in misses.items() if kind != "other")
    return {
        "presidio_spans": wanted,
        "found": found,
        "recall_vs_presidio": round(found / wanted, 4) if wanted else 1.0,
        # Presidio's spans less those the tier's documented fixes remove on purpose.
        "recall_excluding_fixed": round(found / (wanted - fixed), 4) if wanted - fixed else 1.0,
        "misses": dict(misses),
        "other_miss_examples": examples,
        "tier_extra_spans": extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="synth_dataset_v2.json, or a data directory holding presidio_synth/ (e.g. ../shared/data)")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "patterns.json")
    parser.add_argument("--policy", type=Path, default=ROOT / "policies" / "default.yaml",
                        help="thresholds for the `tier@policy` engine (patterns that cannot reach them are not run)")
    args = parser.parse_args(argv)

    data = args.data / "presidio_synth" / DEFAULT_DATA.name if args.data.is_dir() else args.data
    texts = load_texts(data, args.samples)
    corpora = {"synth": texts, "chat": chat_texts(texts, max(1, args.samples // 10))}

    started = time.perf_counter()
    presidio = build_presidio_analyzer(("en",))
    presidio_build = time.perf_counter() - started
    started = time.perf_counter()
    tier = PatternTier(languages=("en",))
    tier_build = time.perf_counter() - started
    detection = load_policy(args.policy).policy.detection
    entity_thresholds = dict(detection.entity_thresholds)

    def policy_threshold(entity: str) -> float:
        return entity_thresholds.get(entity, detection.score_threshold)

    tier_at_policy = PatternTier(languages=("en",), thresholds=entity_thresholds,
                                 default_threshold=detection.score_threshold)

    rows = []
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "build_s": {"presidio": round(presidio_build, 3), "tier": round(tier_build, 3)},
        "threshold": THRESHOLD,
        "corpora": {},
    }
    for name, corpus in corpora.items():
        chars = sum(map(len, corpus))
        analyze_presidio = lambda text: presidio.analyze(text, language="en")
        for text in corpus:  # warm-up
            analyze_presidio(text)
            tier.analyze(text)
        presidio_s, presidio_results = time_passes(analyze_presidio, corpus, args.repeat)
        tier_s, tier_results = time_passes(tier.analyze, corpus, args.repeat, tier.phone.clear_memo)
        warm_s, _ = time_passes(tier.analyze, corpus, args.repeat)  # phone memo kept: numbers seen before
        recall = compare(corpus, presidio_results, tier_results)
        for text in corpus:
            tier_at_policy.analyze(text)
        policy_s, policy_results = time_passes(tier_at_policy.analyze, corpus, args.repeat,
                                               tier_at_policy.phone.clear_memo)
        policy_recall = compare(corpus, presidio_results, policy_results, policy_threshold)
        entry = {
            "texts": len(corpus),
            "chars": chars,
            "mean_chars": round(chars / len(corpus), 1),
            "presidio": {"seconds": round(presidio_s, 4), "chars_per_s": round(chars / presidio_s),
                         "us_per_char": round(presidio_s * 1e6 / chars, 3)},
            "tier": {"seconds": round(tier_s, 4), "chars_per_s": round(chars / tier_s),
                     "us_per_char": round(tier_s * 1e6 / chars, 3)},
            "speedup": round(presidio_s / tier_s, 1),
            "tier_warm_memo": {"seconds": round(warm_s, 4), "us_per_char": round(warm_s * 1e6 / chars, 3),
                               "speedup": round(presidio_s / warm_s, 1)},
            "recall": recall,
            # Same tier built with the policy's thresholds: unreachable weak patterns are not run.
            "tier_at_policy": {"policy": args.policy.name, "seconds": round(policy_s, 4),
                               "us_per_char": round(policy_s * 1e6 / chars, 3),
                               "speedup": round(presidio_s / policy_s, 1), "recall": policy_recall},
        }
        report["corpora"][name] = entry
        rows.append((name, entry))

    print(f"build: presidio {presidio_build:.2f} s, tier {tier_build:.2f} s (imports excluded)")
    print(f"{'corpus':8} {'texts':>5} {'chars':>7} {'presidio µs/ch':>14} {'tier µs/ch':>10} {'speedup':>7} "
          f"{'warm':>6} {'recall':>6} {'excl.fixes':>10}  {'misses by kind':<28} {'extra':>5}")
    for name, entry in rows:
        recall = entry["recall"]
        misses = ", ".join(f"{k}={v}" for k, v in recall["misses"].items()) or "-"
        print(f"{name:8} {entry['texts']:>5} {entry['chars']:>7} {entry['presidio']['us_per_char']:>14.2f} "
              f"{entry['tier']['us_per_char']:>10.3f} {entry['speedup']:>6.1f}x "
              f"{entry['tier_warm_memo']['speedup']:>5.1f}x {recall['recall_vs_presidio']:>6.3f} "
              f"{recall['recall_excluding_fixed']:>10.3f}  {misses:<28} {recall['tier_extra_spans']:>5}")
    for name, entry in rows:
        at_policy = entry["tier_at_policy"]
        print(f"{name:8} tier@{at_policy['policy']}: {at_policy['us_per_char']:.3f} µs/char, "
              f"{at_policy['speedup']:.1f}x, recall vs Presidio at the policy's thresholds "
              f"{at_policy['recall']['recall_vs_presidio']:.3f} (excl. fixes {at_policy['recall']['recall_excluding_fixed']:.3f})")
    print("speedup: Presidio time / tier time (tier's phone memo cleared before each pass); "
          "warm: memo kept, numbers parsed in an earlier pass")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
