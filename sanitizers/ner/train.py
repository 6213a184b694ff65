"""Retrain the built-in NER models (both tiers, or one) from the shared corpora and synthetic prompts.

    python -m sanitizers.ner.train [--tier fast|accurate|both] [--data ../shared/data] [--minutes N]

Each tier's own recipe takes the remaining options (`python -m sanitizers.ner.train_fast --help`,
`python -m sanitizers.ner.train_accurate --help`). Both run on one CPU core each; run with `--tier both`
on a 2-core machine and they train side by side, each within its time budget (under an hour in all).
The accurate tier needs the `train` extra: `pip install -e ".[train]"`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=("fast", "accurate", "both"), default="both")
    args, rest = parser.parse_known_args(argv)
    tiers = ("fast", "accurate") if args.tier == "both" else (args.tier,)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = [
        subprocess.Popen([sys.executable, "-m", f"sanitizers.ner.train_{tier}", *rest], env=env) for tier in tiers
    ]
    return max(process.wait() for process in running)


if __name__ == "__main__":
    sys.exit(main())
