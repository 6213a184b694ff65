"""Loaders for the NER training and evaluation data (read by path from the shared data folder).

Everything is turned into `Example`: natural text plus character spans labelled PERSON / LOCATION /
ORGANIZATION. The corpora come tokenised (one sentence per line, BIO tags); they are detokenised here so
that the model is trained on text as spaCy's own tokenizer will see it at run time.

Nothing here copies data into the repository; callers pass the data folder (default `../shared/data`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sanitizers.ner import NER_LABELS

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    spans: tuple[Span, ...]  # (start, end exclusive, label), sorted, non-overlapping
    source: str  # "<corpus>/<file stem>", e.g. "broad_twitter_corpus/dev", or "synth", "presidio/train"


DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Files per language, relative to <data>/ner. wnut17/dev.jsonl is the WNUT-17 dev set (an evaluation
# set), re3d/train.jsonl has pronoun/nominal mentions: both are deliberately absent.
CORPUS_FILES: dict[str, tuple[str, ...]] = {
    "en": (
        "broad_twitter_corpus/train.jsonl",
        "broad_twitter_corpus/dev.jsonl",
        "broad_twitter_corpus/test.jsonl",
        "wnut17/train.jsonl",
        "universal_ner/UNER_English-EWT/dev.jsonl",
        "universal_ner/UNER_English-EWT/test.jsonl",
        "universal_ner/UNER_English-PUD/test.jsonl",
        "gum/train.jsonl",
        "gum/dev.jsonl",
        "gum/test.jsonl",
        "litbank/train.jsonl",
        *(f"crossner/{d}/{s}.jsonl" for d in ("ai", "literature", "music", "politics", "science")
          for s in ("train", "dev", "test")),
        "sec_filings/train.jsonl",
        "sec_filings/test.jsonl",
        "re3d/train.named_only.jsonl",
    ),
    "de": (
        "germeval2014/dev.jsonl",
        "germeval2014/test.jsonl",
        "universal_ner/UNER_German-PUD/test.jsonl",
        "europeana_newspapers/de_lft.jsonl",
        "europeana_newspapers/de_onb.jsonl",
        "europeana_newspapers/de_sbb.jsonl",
    ),
    "fr": ("europeana_newspapers/fr_bnf.jsonl", "fr_litbank/train.jsonl"),
    "es": ("meddocan/train.jsonl", "meddocan/dev.jsonl", "meddocan/test.jsonl"),
    "nl": ("europeana_newspapers/nl_kb.jsonl",),
}

# Never train on these (evaluation anchors); load_corpora refuses them even if listed by mistake.
RESERVED_FILES = frozenset({"wnut17/dev.jsonl"})

# ---------------------------------------------------------------------------------------------------
# Detokenisation

_NO_SPACE_BEFORE = frozenset(
    {",", ".", "!", "?", ";", ":", ")", "]", "}", "%", "...", "…", "n't", "N'T", "’", "”", "»"}
)
_NO_SPACE_AFTER = frozenset({"(", "[", "{", "$", "#", "@", "“", "«", "£", "€"})
_CLITICS = frozenset({"s", "S", "ve", "ll", "re", "m", "d", "t", "VE", "LL", "RE", "M", "D", "T"})


def _is_clitic(tok: str) -> bool:
    """'s, 're, n't ... written as one token (UD, GUM) attach to the word before."""
    if tok[:1] in ("'", "’") and tok[1:] in _CLITICS:
        return True
    return tok.lower() == "n't"


def detokenize(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join tokens into natural text; returns the text and each token's (start, end) char offsets.

    Rules are deliberately simple (punctuation attaches left, opening brackets right, clitics and
    straight quotes paired); the point is that spaCy's tokenizer re-splits the text the same way.
    """
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    glue_next = True  # no space before the first token
    quote_open = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        glue = glue_next or tok in _NO_SPACE_BEFORE or _is_clitic(tok)
        glue_next = tok in _NO_SPACE_AFTER
        if tok in ("'", "’") and nxt in _CLITICS:  # twitter style: should ' ve -> should've
            glue, glue_next = True, True
        elif tok == '"':
            if quote_open:
                glue = True
            else:
                glue_next = True
            quote_open = not quote_open
        if not glue:
            parts.append(" ")
            pos += 1
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


def bio_to_example(tokens: Sequence[str], tags: Sequence[str], source: str,
                   keep: Iterable[str] = NER_LABELS) -> Example:
    """Convert one BIO-tagged sentence; labels outside `keep` become O. A stray I- starts a span."""
    keep = frozenset(keep)
    text, offsets = detokenize(tokens)
    spans: list[Span] = []
    cur: list = []  # [start, end, label] of the open span
    for (start, end), tag in zip(offsets, tags):
        prefix, _, label = tag.partition("-")
        if tag == "O" or label not in keep:
            cur = []
            continue
        # I- continues; so does a B- glued to the span ('@' + 'name' in BTC are tagged as two entities).
        if cur and cur[2] == label and (prefix == "I" or cur[1] == start):
            cur[1] = end
            spans[-1] = (cur[0], end, label)
        else:
            cur = [start, end, label]
            spans.append((start, end, label))
    return Example(text, tuple(spans), source)


def read_jsonl(path: Path, source: str) -> Iterator[Example]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            tokens = rec["tokens"]
            if not tokens:
                continue
            ex = bio_to_example(tokens, rec["tags"], source)
            if ex.text.strip():
                yield ex


def load_corpora(data_dir: str | Path = DEFAULT_DATA, languages: Sequence[str] = ("en",)) -> list[Example]:
    """Every sentence of the training corpora for `languages`, source = '<corpus>/<file stem>'.

    Files absent from the data folder are skipped (the snapshot lacks some splits); an unknown language
    is an error.
    """
    root = Path(data_dir) / "ner"
    out: list[Example] = []
    for lang in languages:
        if lang not in CORPUS_FILES:
            raise ValueError(f"no NER corpora for language {lang!r}; known: {sorted(CORPUS_FILES)}")
        for rel in CORPUS_FILES[lang]:
            if rel in RESERVED_FILES:
                raise ValueError(f"{rel} is reserved for evaluation")
            path = root / rel
            if path.exists():
                out.extend(read_jsonl(path, rel.removesuffix(".jsonl")))
    return out


# ---------------------------------------------------------------------------------------------------
# presidio-research synthetic set

PRESIDIO_LABELS = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
}


def synth_eval_template(template_id: int) -> bool:
    """The evaluation harness scores only even template ids; odd ones may be trained on."""
    return template_id % 2 == 0


SYNTH_EVAL_TEMPLATE: Callable[[int], bool] = synth_eval_template


def presidio_synth(path: str | Path, split: str) -> list[Example]:
    """Records of synth_dataset_v2.json for `split` ('train' = odd template ids, 'eval' = even).

    `path` is the JSON file or the data folder holding presidio_synth/synth_dataset_v2.json.
    Non-NER labels (phone, credit card, ...) are dropped: those belong to the pattern recognizers.
    """
    if split not in ("train", "eval"):
        raise ValueError("split must be 'train' or 'eval'")
    p = Path(path)
    if p.is_dir():
        p = p / "presidio_synth" / "synth_dataset_v2.json"
    records = json.loads(p.read_text(encoding="utf-8"))
    want_eval = split == "eval"
    out: list[Example] = []
    for rec in records:
        if synth_eval_template(int(rec["template_id"])) != want_eval:
            continue
        spans = sorted(
            (s["start_position"], s["end_position"], PRESIDIO_LABELS[s["entity_type"]])
            for s in rec["spans"]
            if s["entity_type"] in PRESIDIO_LABELS
        )
        out.append(Example(rec["full_text"], tuple(spans), f"presidio/{split}"))
    return out


# ---------------------------------------------------------------------------------------------------
# WNUT-17 dev (evaluation only)

WNUT_LABELS = {"person": "PERSON", "location": "LOCATION", "group": "ORGANIZATION", "corporation": "ORGANIZATION"}


def wnut17_dev(data_dir: str | Path = DEFAULT_DATA) -> list[Example]:
    """The WNUT-17 dev set (emerging.dev.conll) as Examples; product/creative-work are dropped.

    Evaluation data: never train on this.
    """
    path = Path(data_dir) / "wnut17" / "emerging.dev.conll"
    out: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            mapped = [t[:2] + WNUT_LABELS[t[2:]] if t[2:] in WNUT_LABELS else "O" for t in tags]
            out.append(bio_to_example(tokens, mapped, "wnut17/dev"))
        tokens.clear()
        tags.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            flush()
            continue
        tok, _, tag = line.rpartition("\t")
        tokens.append(tok)
        tags.append(tag.strip() or "O")
    flush()
    return out
