"""Long and repeated input: a multi-megabyte document, and turn 20 of a chat against turn 1.

    .venv/bin/python bench/long_input.py [--policy policies/default.yaml] [--ner SPEC] [--mb 7]
                                         [--turns 20] [--data ../shared/data] [--json out.json]

1. Document: `--mb` megabytes of prompt-like text (PUPA prompts and presidio synth sentences when the
   data folder is there, else generated sentences) analyzed as ONE segment by the policy's detector:
   wall time, µs per character, detections, peak RSS. Chunking keeps the cost linear and no spaCy
   length limit is hit.
2. Conversation: the full request path (`prepare_chat`: extract, detect, decide, transform, leak
   guard, serialize) on turn 1 and on turn N of a chat whose history grows by one user and one
   assistant message per turn, with the detector's per-segment cache as in the proxy. Reports the
   median cost of each turn and the ratio (target ≤ 1.5).
Single-threaded, figures from this machine; the README quotes them.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from privacy_proxy.pipeline import Exchange, prepare_chat  # noqa: E402
from privacy_proxy.policy.loader import LoadedPolicy, load_policy  # noqa: E402
from privacy_proxy.runtime import Runtime  # noqa: E402

FALLBACK = (
    "Dear Ms. Lindqvist, thank you for your letter of 3 March. Please call me at 212-555-0143 or write to "
    "tobias.berg@example.com. I live at 42 Harbour Road, Portsmouth, and work for Northwind Logistics. "
)


def corpus_text(data: Path) -> str:
    """Real prompt text when the shared data is present: PUPA prompts and synthetic PII sentences."""
    parts: list[str] = []
    pupa = data / "pupa" / "PUPA_New.csv"
    if pupa.exists():
        with pupa.open(encoding="utf-8") as handle:
            parts.extend(row["user_query"] for row in csv.DictReader(handle))
    synth = data / "presidio_synth" / "synth_dataset_v2.json"
    if synth.exists():
        parts.extend(record["full_text"] for record in json.loads(synth.read_text(encoding="utf-8")))
    return "\n\n".join(parts) if parts else FALLBACK * 50


def document(data: Path, megabytes: float) -> str:
    base = corpus_text(data)
    size = int(megabytes * 1_000_000)
    return (base * (size // len(base) + 1))[:size]


def build(policy_path: Path, ner: str | None) -> Runtime:
    loaded = load_policy(policy_path)
    if ner is not None:
        detection = loaded.policy.detection.model_copy(update={"ner": ner})
        loaded = LoadedPolicy(loaded.policy.model_copy(update={"detection": detection}), loaded.path, loaded.sha256)
    return Runtime.build(loaded, b"bench-secret" * 3)


def bench_document(runtime: Runtime, text: str) -> dict:
    started = time.perf_counter()
    detections = runtime.detector.analyze(text)
    seconds = time.perf_counter() - started
    return {
        "chars": len(text),
        "seconds": round(seconds, 2),
        "us_per_char": round(seconds / len(text) * 1e6, 3),
        "detections": len(detections),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def chat_turns(base: str, turns: int) -> list[list[dict]]:
    """Bodies' message lists for turns 1..N: each turn adds a ~1 KB user message and an answer."""
    chunks = [base[i : i + 1000] for i in range(0, len(base), 1000)]
    messages: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
    bodies = []
    for turn in range(turns):
        messages.append({"role": "user", "content": chunks[turn % len(chunks)] + f" (turn {turn + 1})"})
        bodies.append(list(messages))
        messages.append({"role": "assistant", "content": f"Noted, here is a summary of part {turn + 1}: " + chunks[(turn + 7) % len(chunks)][:400]})
    return bodies


def bench_conversation(runtime: Runtime, base: str, turns: int, repeats: int) -> dict:
    def cost(messages: list[dict]) -> float:
        exchange = Exchange(request_id="bench", route="/v1/chat/completions", runtime=runtime)
        started = time.perf_counter()
        try:
            prepare_chat(exchange, {"model": "bench", "messages": messages})
        except Exception:  # a blocked turn (e.g. a card number in the text) costs the same work
            pass
        return (time.perf_counter() - started) * 1000

    bodies = chat_turns(base, turns)
    first, last = [], []
    for repeat in range(repeats):
        # A fresh conversation each repeat: its new user message is not in the cache yet.
        salt = f" [run {repeat}]"
        runs = [[dict(m, content=m["content"] + salt) if m["role"] == "user" else m for m in body] for body in bodies]
        for number, body in enumerate(runs):
            took = cost(body)
            if number == 0:
                first.append(took)
            elif number == len(runs) - 1:
                last.append(took)
    turn1, turn_n = statistics.median(first), statistics.median(last)
    return {"turns": turns, "turn1_ms": round(turn1, 2), f"turn{turns}_ms": round(turn_n, 2), "ratio": round(turn_n / turn1, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=ROOT / "policies" / "default.yaml")
    parser.add_argument("--ner", default=None, help="override detection.ner (e.g. none, builtin:fast)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--mb", type=float, default=7.0)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    runtime = build(args.policy, args.ner)
    result: dict = {"policy": str(args.policy), "ner": args.ner or runtime.policy.detection.ner,
                    "build_seconds": round(time.perf_counter() - started, 2)}
    base = corpus_text(args.data)
    result["conversation"] = bench_conversation(runtime, base, args.turns, args.repeats)
    print(json.dumps(result["conversation"]))
    if args.mb > 0:
        result["document"] = bench_document(runtime, document(args.data, args.mb))
        print(json.dumps(result["document"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
