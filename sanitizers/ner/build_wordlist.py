"""Build `data/common_words.txt`: English words written in lower case more often than capitalized.

The name gazetteer uses it to tell "Will" the name from "will" the verb: a known first name that is
also a common word is only taken as a name with more evidence (a surname after it, a trigger phrase
before it). The list is derived from the English NER corpora in ``../shared/data/ner`` (word counts
only; no text is kept) and committed, so the proxy needs no corpus at run time.

    python -m sanitizers.ner.build_wordlist --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

ENGLISH_FILES = (
    "broad_twitter_corpus/train.jsonl",
    "wnut17/train.jsonl",
    "gum/train.jsonl",
    "gum/dev.jsonl",
    "gum/test.jsonl",
    "litbank/train.jsonl",
    "sec_filings/train.jsonl",
    "crossner/*/*.jsonl",
    "universal_ner/UNER_English-EWT/*.jsonl",
)
OUTPUT = Path(__file__).parent / "data" / "common_words.txt"


def count_case(data_dir: Path) -> tuple[Counter[str], Counter[str]]:
    """Per lower-cased word: how often it is written lower case, and capitalized mid-sentence."""
    lower: Counter[str] = Counter()
    capital: Counter[str] = Counter()
    for pattern in ENGLISH_FILES:
        for path in sorted(data_dir.joinpath("ner").glob(pattern)):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    tokens = json.loads(line)["tokens"]
                    for position, token in enumerate(tokens):
                        if not token.isalpha():
                            continue
                        if token.islower():
                            lower[token] += 1
                        elif position and token[0].isupper() and token[1:].islower():
                            capital[token.lower()] += 1
    return lower, capital


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--min-count", type=int, default=3)
    args = parser.parse_args(argv)
    lower, capital = count_case(args.data)
    words = sorted(w for w, n in lower.items() if n >= args.min_count and n >= capital[w])
    OUTPUT.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"{len(words)} common words -> {OUTPUT}")


if __name__ == "__main__":
    main()
