"""Training recipe for the built-in fast NER tier: a small spaCy `ner` trained from scratch on one core.

    OMP_NUM_THREADS=1 python -m sanitizers.ner.train_fast --data ../shared/data --out sanitizers/ner/models/fast

Train data: the English corpora (sanitizers.ner.corpus), the presidio synthetic set's odd templates, and
fresh synthetic chat prompts (sanitizers.ner.synth) every epoch, upweighted because prompts are the target
domain. Dev (checkpoint selection): Broad Twitter Corpus dev + GUM dev + held-out synthetic prompts; the
evaluation sets (WNUT-17 dev, presidio even templates, PUPA) are never trained on or selected on.
The best dev checkpoint (averaged weights) is written to --out with `meta_training.json`, which also
records the loose-match quality report (`quality_report`) of the final model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / thinc are imported

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example as SpacyExample
from spacy.training.batchers import minibatch_by_words
from thinc.api import Adam

from sanitizers.ner import NER_LABELS, NerSpan
from sanitizers.ner.corpus import (
    DEFAULT_DATA,
    Example,
    load_corpora,
    presidio_synth,
    wnut17_dev,
)
from sanitizers.ner.synth import generate

log = logging.getLogger("train_fast")

DEV_SOURCES = frozenset({"broad_twitter_corpus/dev", "gum/dev"})
# Extra copies per epoch: WNUT-17 train is the closest corpus to chat-like user text.
SOURCE_WEIGHTS = {"wnut17/train": 2}
SYNTH_DEV_SEED = 987_654_321  # far from any training seed


def build_nlp(width: int = 96, depth: int = 4, rows: Sequence[int] = (20000, 2000, 5000, 1000),
              hidden: int = 64) -> Language:
    """Blank English + `ner` with its own tok2vec: MultiHashEmbed(NORM, PREFIX, SUFFIX, SHAPE) + CNN."""
    nlp = spacy.blank("en")
    tok2vec = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": width,
            "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
            "rows": list(rows),
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": width, "depth": depth, "window_size": 1, "maxout_pieces": 3,
        },
    }
    model = {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner", "extra_state_tokens": False, "hidden_width": hidden,
        "maxout_pieces": 2, "use_upper": True, "tok2vec": tok2vec,
    }
    ner = nlp.add_pipe("ner", config={"model": model})
    for label in NER_LABELS:
        ner.add_label(label)
    return nlp


def _align(doc: Doc, spans: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Snap spans to spaCy tokens when that only adds punctuation ('@name', 'Ltd.'); merge what then overlaps.

    Spans that would need more than punctuation are kept as given: spaCy marks their tokens '-'
    (unknown, no loss) rather than O.
    """
    out: list[tuple[int, int, str]] = []
    for start, end, label in spans:
        if doc.char_span(start, end) is None:
            cs = doc.char_span(start, end, alignment_mode="expand")
            if cs is not None:
                extra = doc.text[cs.start_char:start] + doc.text[end:cs.end_char]
                if not any(ch.isalnum() for ch in extra):
                    start, end = cs.start_char, cs.end_char
        if out and start < out[-1][1]:
            if out[-1][2] == label:
                out[-1] = (out[-1][0], max(end, out[-1][1]), label)
            continue
        out.append((start, end, label))
    return out


def to_spacy(nlp: Language, examples: Sequence[Example]) -> list[SpacyExample]:
    out = []
    for ex in examples:
        doc = nlp.make_doc(ex.text)
        out.append(SpacyExample.from_dict(doc, {"entities": [list(s) for s in _align(doc, ex.spans)]}))
    return out


def case_variants(examples: Sequence[Example], rng: random.Random, lower: float = 0.1,
                  upper: float = 0.03) -> list[Example]:
    """Lower-cased and upper-cased copies of a random share of the corpora: chat users often write
    names in lower case, and the corpora are nearly all cased."""
    out = []
    for ex in examples:
        r = rng.random()
        if r >= lower + upper:
            continue
        text = ex.text.lower() if r < lower else ex.text.upper()
        if len(text) == len(ex.text):  # a few characters change length when case-mapped
            out.append(Example(text, ex.spans, ex.source + "/recased"))
    return out


# ---------------------------------------------------------------------------------------------------
# Loose evaluation (the harness's notion: a prediction counts if it overlaps a gold span of its type)

def loose_scores(predict: Callable[[str], list[NerSpan]], examples: Sequence[Example],
                 labels: Sequence[str] = NER_LABELS) -> dict[str, dict[str, float]]:
    tp_p: Counter[str] = Counter()
    n_p: Counter[str] = Counter()
    tp_g: Counter[str] = Counter()
    n_g: Counter[str] = Counter()
    for ex in examples:
        pred = [p for p in predict(ex.text) if p.label in labels]
        gold = [g for g in ex.spans if g[2] in labels]
        for p in pred:
            n_p[p.label] += 1
            tp_p[p.label] += any(g[2] == p.label and g[0] < p.end and p.start < g[1] for g in gold)
        for g in gold:
            n_g[g[2]] += 1
            tp_g[g[2]] += any(p.label == g[2] and g[0] < p.end and p.start < g[1] for p in pred)

    def prf(tpp: int, np_: int, tpg: int, ng: int) -> dict[str, float]:
        p = tpp / np_ if np_ else 0.0
        r = tpg / ng if ng else 0.0
        return {"p": round(p, 4), "r": round(r, 4), "f": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                "n_gold": ng, "n_pred": np_}

    out = {lab: prf(tp_p[lab], n_p[lab], tp_g[lab], n_g[lab]) for lab in labels}
    out["micro"] = prf(sum(tp_p.values()), sum(n_p.values()), sum(tp_g.values()), sum(n_g.values()))
    return out


def chat_texts(n: int = 100, size: int = 1024, seed: int = 4242) -> list[str]:
    """~1 KB chat-like texts for timing (synthetic prompts glued together)."""
    pool = generate(n * 12, seed=seed)
    texts, cur = [], ""
    for ex in pool:
        cur = f"{cur}\n\n{ex.text}" if cur else ex.text
        if len(cur) >= size:
            texts.append(cur[:size])
            cur = ""
            if len(texts) == n:
                break
    return texts


def ms_per_kb(predict: Callable[[str], list[NerSpan]], texts: Sequence[str]) -> float:
    """p50 milliseconds per 1,024 characters of text, one call per text."""
    for t in texts[:5]:
        predict(t)  # warm-up
    times = []
    for t in texts:
        t0 = time.perf_counter()
        predict(t)
        times.append((time.perf_counter() - t0) * 1000 * 1024 / max(len(t), 1))
    return round(statistics.median(times), 2)


def quality_report(model_dir: str | Path, data_dir: str | Path = DEFAULT_DATA) -> dict:
    from sanitizers.ner.spacy_ner import SpacyNer

    model = SpacyNer(model_dir)
    wnut = loose_scores(model.predict, wnut17_dev(data_dir))
    synth = loose_scores(model.predict, presidio_synth(data_dir, "eval"))
    return {"wnut17_dev": wnut, "presidio_synth_eval": synth, "ms_per_kb_p50": ms_per_kb(model.predict, chat_texts())}


# ---------------------------------------------------------------------------------------------------

def train(data_dir: Path, out: Path, minutes: float, seed: int, n_synth: int, presidio_weight: int,
          eval_every_s: float = 120.0, dropout: float = 0.15, batch_words: int = 1000) -> dict:
    t_start = time.time()
    rng = random.Random(seed)
    spacy.util.fix_random_seed(seed)
    nlp = build_nlp()
    nlp.meta.update({"name": "privacy_proxy_fast_ner", "version": "1.0.0",
                     "description": "privacy-proxy fast NER tier (PERSON/LOCATION/ORGANIZATION), trained from "
                                    "scratch by sanitizers.ner.train_fast; see sanitizers/ner/DATA_CARD.md"})

    corpora = load_corpora(data_dir, ("en",))
    dev_raw = [e for e in corpora if e.source in DEV_SOURCES] + generate(600, seed=SYNTH_DEV_SEED)
    train_raw = [e for e in corpora if e.source not in DEV_SOURCES]
    presidio = presidio_synth(data_dir, "train")
    upweighted = [e for e in train_raw for _ in range(SOURCE_WEIGHTS.get(e.source, 1) - 1)]
    fixed = to_spacy(nlp, train_raw + upweighted) + to_spacy(nlp, presidio) * presidio_weight
    dev = to_spacy(nlp, dev_raw)
    sizes = {
        "train_corpora_sentences": len(train_raw),
        "train_corpora_by_source": dict(Counter(e.source.split("/")[0] for e in train_raw)),
        "presidio_train_records": len(presidio), "presidio_weight": presidio_weight,
        "source_weights": SOURCE_WEIGHTS,
        "synth_per_epoch": n_synth, "dev_sentences": len(dev),
        "train_entities": dict(Counter(s[2] for e in train_raw + presidio for s in e.spans)),
    }
    log.info("data: %s", sizes)

    optimizer = Adam(learn_rate=0.001, L2=0.01, grad_clip=1.0, use_averages=True)
    nlp.initialize(lambda: fixed[:2000], sgd=optimizer)
    deadline = t_start + minutes * 60
    best: dict = {"ents_f": -1.0}
    curve: list[dict] = []
    last_eval = time.time()
    epoch = words = 0
    while time.time() < deadline:
        epoch += 1
        fresh = generate(n_synth, seed=seed * 100_003 + epoch) + case_variants(train_raw, rng)
        batch_pool = fixed + to_spacy(nlp, fresh)
        rng.shuffle(batch_pool)
        losses: dict[str, float] = {}
        for batch in minibatch_by_words(batch_pool, size=batch_words, tolerance=0.2, discard_oversize=False):
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses)
            words += sum(len(eg) for eg in batch)
            now = time.time()
            if now - last_eval >= eval_every_s or now >= deadline:
                last_eval = now
                with nlp.use_params(optimizer.averages):
                    scores = nlp.evaluate(dev)
                    point = {"minutes": round((now - t_start) / 60, 2), "epoch": epoch, "words": words,
                             "loss": round(float(losses.get("ner", 0.0)), 1), "ents_p": round(float(scores["ents_p"]), 4),
                             "ents_r": round(float(scores["ents_r"]), 4), "ents_f": round(float(scores["ents_f"]), 4)}
                    curve.append(point)
                    log.info("%s", point)
                    if scores["ents_f"] > best["ents_f"]:
                        best = {**point, "per_type": {k: {m: round(float(v), 4) for m, v in d.items()}
                                                      for k, d in scores["ents_per_type"].items()}}
                        nlp.to_disk(out, exclude=["vocab"])  # hash features need no string table
                if now >= deadline:
                    break
    meta = {
        "recipe": "sanitizers.ner.train_fast", "seed": seed, "spacy": spacy.__version__,
        "train_minutes": round((time.time() - t_start) / 60, 2), "epochs": epoch, "words_seen": words,
        "data": sizes, "dev": "broad_twitter_corpus/dev + gum/dev + 600 held-out synthetic prompts",
        "best_dev": best, "curve": curve,
    }
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (../shared/data)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "models" / "fast")
    ap.add_argument("--minutes", type=float, default=38.0, help="training time budget (excluding the final report)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--synth", type=int, default=12000, help="fresh synthetic prompts per epoch")
    ap.add_argument("--presidio-weight", type=int, default=3)
    ap.add_argument("--no-report", action="store_true", help="skip the WNUT / presidio / speed report")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore", message=r".*\[W030\].*")  # misaligned spans are handled ('-' tags)

    meta = train(args.data, args.out, args.minutes, args.seed, args.synth, args.presidio_weight)
    if not args.no_report and (args.out / "config.cfg").exists():
        meta["quality"] = quality_report(args.out, args.data)
        log.info("quality: %s", json.dumps(meta["quality"]))
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    meta["artifact_bytes"] = size
    (args.out / "meta_training.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log.info("saved %s (%.1f MB)", args.out, size / 1e6)


if __name__ == "__main__":
    main()
