"""Precision and recall of the sensitive-topic classifier (sanitizers.topics) on small labelled sets.

    .venv/bin/python bench/topics.py [--method lexicon|embeddings|both ...] [--threshold 0.5] [--json OUT]

Sets (JSON lines {"text", "topics": [...]}, multi-label, [] = not sensitive), written by hand:
- bench/data/topics_dev.jsonl: the lexicon and the embedding calibration were tuned looking at it;
- bench/data/topics_heldout.jsonl: written before the lexicon, never tuned on — the honest figure.

A text is predicted to carry a topic when its score is at or above the threshold. Micro-averaged over
(text, topic) pairs; "any" is the binary question the router asks: is the text sensitive at all?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sanitizers.topics import TOPICS, TopicClassifier

SETS = {
    "dev": ROOT / "bench/data/topics_dev.jsonl",
    "heldout": ROOT / "bench/data/topics_heldout.jsonl",
    "fresh": ROOT / "bench/data/topics_fresh.jsonl",
}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate(classifier: TopicClassifier, rows: list[dict], threshold: float) -> dict:
    tp = fp = fn = 0
    any_tp = any_fp = any_fn = 0
    per_topic = {t: [0, 0, 0] for t in TOPICS}
    errors = []
    started = time.perf_counter()
    for row in rows:
        predicted = set(classifier.analyze(row["text"]).above(threshold))
        gold = set(row["topics"])
        for topic in TOPICS:
            if topic in predicted and topic in gold:
                per_topic[topic][0] += 1
            elif topic in predicted:
                per_topic[topic][1] += 1
            elif topic in gold:
                per_topic[topic][2] += 1
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
        any_tp += bool(predicted) and bool(gold)
        any_fp += bool(predicted) and not gold
        any_fn += not predicted and bool(gold)
        if predicted != gold:
            errors.append({"text": row["text"], "gold": sorted(gold), "predicted": sorted(predicted)})
    elapsed = time.perf_counter() - started

    def pr(a: int, b: int, c: int) -> dict:
        return {"precision": round(a / (a + b), 3) if a + b else 1.0, "recall": round(a / (a + c), 3) if a + c else 1.0,
                "tp": a, "fp": b, "fn": c}

    return {
        "texts": len(rows),
        "micro": pr(tp, fp, fn),
        "any": pr(any_tp, any_fp, any_fn),
        "per_topic": {t: pr(*v) for t, v in per_topic.items()},
        "ms_per_text": round(1000 * elapsed / max(1, len(rows)), 3),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append", choices=["lexicon", "embeddings", "both"])
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--errors", action="store_true", help="print the misclassified texts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    for method in args.method or ["lexicon"]:
        classifier = TopicClassifier(method=method)
        for name, path in SETS.items():
            result = evaluate(classifier, load(path), args.threshold)
            results[f"{method}/{name}"] = result
            m, a = result["micro"], result["any"]
            print(f"{method:10s} {name:8s} n={result['texts']:3d}  micro P={m['precision']:.3f} R={m['recall']:.3f}"
                  f"  any-sensitive P={a['precision']:.3f} R={a['recall']:.3f}  {result['ms_per_text']:.2f} ms/text")
            if args.errors:
                for error in result["errors"]:
                    print(f"    gold={error['gold']} predicted={error['predicted']}  {error['text']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
