"""Detection quality and speed: the proxy's detector vs Presidio, side by side on public data.

    .venv/bin/python bench/detection.py [--data ../shared/data] [--synth PATH] [--wnut PATH]
        [--policy policies/default.yaml ...] [--ner none builtin spacy:/path ...] [--limit N]
        [--systems proxy presidio presidio+spacy] [--datasets synth wnut]
        [--presidio-threshold 0.0] [--spacy-model en_core_web_lg ...] [--out bench/results/detection.json]

Systems
-------
- ``proxy:<policy>`` / ``proxy:<policy>[ner=<spec>]``: `load_policy` → (detection.ner overridden by
  ``--ner``) → `detector_settings` → `Detector`, then the policy's score thresholds (per entity), exactly
  what the proxy acts on. The per-text cache is switched off (cache_size 0): no timed call is a cache hit.
  Detection is scored, not the action a rule takes (a detected DATE_TIME the policy allows still counts).
- ``presidio``: Presidio `AnalyzerEngine` with its predefined English recognizers minus the NER one
  (SpacyRecognizer), on the blank spaCy pipeline, as `sanitizers.presidio_engine.build_presidio_analyzer`
  builds it (the proxy's pattern tier is measured against it), score threshold ``--presidio-threshold``
  (Presidio's default 0). Its e-mail recognizer checks the top-level domain on the bundled suffix list
  (`OfflineEmailRecognizer`) instead of downloading it.
- ``presidio+spacy:<model>``: the same with a real `SpacyNlpEngine` and the SpacyRecognizer, for each
  installed spaCy model package (skipped with a message when none is installed).
A system that fails to build (or to analyze) is listed under "skipped" with its error.

Label mapping (also written to the JSON as ``label_mapping``)
-------------------------------------------------------------
presidio synth v2 (only records with an EVEN template_id; odd ones are for training):
    PERSON→PERSON; GPE, STREET_ADDRESS, ZIP_CODE→LOCATION; ORGANIZATION→ORGANIZATION; NRP→NRP;
    DATE_TIME→DATE_TIME; DOMAIN_NAME→URL; PHONE_NUMBER, EMAIL_ADDRESS, CREDIT_CARD, IBAN_CODE, US_SSN,
    IP_ADDRESS, US_DRIVER_LICENSE unchanged. TITLE and AGE: don't care (not scored; predictions there
    count neither TP nor FP). Primary: token level; secondary: span level, loose overlap.
WNUT-17 dev: person→PERSON; location→LOCATION; group, corporation→ORGANIZATION; product and
    creative-work: don't care. Text = tokens joined by single spaces. Primary: span level, loose
    overlap; secondary: exact span match.
Predictions: entity names as the system reports them; predictions of types a dataset does not score
    are ignored (dropped before scoring). Gold and predicted spans are trimmed of surrounding whitespace.
Matching rules and the zero-denominator convention: see bench/eval_metrics.py.

Speed: every sample analyzed once, in one thread, one after the other; the build and one warm-up call
on a fixed text are excluded (build_s reports them); chars/s = characters / summed analysis time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from eval_metrics import (  # noqa: E402
    CountsByEntity,
    Prediction,
    Region,
    Span,
    Timer,
    bio_sentences,
    bio_spans,
    exact_span_counts,
    loose_span_counts,
    merge,
    summarize,
    token_counts,
    tokenize,
    trim_span,
)

SYNTH_GOLD = {
    "PERSON": "PERSON", "GPE": "LOCATION", "STREET_ADDRESS": "LOCATION", "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION", "NRP": "NRP", "DATE_TIME": "DATE_TIME", "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "DOMAIN_NAME": "URL",
}  # fmt: skip
WNUT_GOLD = {"person": "PERSON", "location": "LOCATION", "group": "ORGANIZATION", "corporation": "ORGANIZATION"}

LABEL_MAPPING: dict[str, Any] = {
    "synth": {
        "split": "records with an even template_id only (odd template ids are used for training)",
        "gold": SYNTH_GOLD,
        "dont_care": ["TITLE", "AGE"],
        "scored": sorted(set(SYNTH_GOLD.values())),
        "primary": "token",
        "secondary": "span_loose",
    },
    "wnut": {
        "text": "tokens joined with single spaces",
        "gold": WNUT_GOLD,
        "dont_care": ["product", "creative-work"],
        "scored": sorted(set(WNUT_GOLD.values())),
        "primary": "span_loose",
        "secondary": "span_exact",
    },
    "predictions": "entity names used as reported, except the proxy's ZIP_CODE, which counts as LOCATION as the "
    "gold's ZIP_CODE does; predictions of types a dataset does not score are ignored",
    "prediction_mapping": {"ZIP_CODE": "LOCATION"},
    "spans": "gold and predicted spans are trimmed of surrounding whitespace",
    "zero_division": "a precision/recall whose denominator is 0 is reported as 0.0",
}
PREDICTION_MAPPING: dict[str, str] = LABEL_MAPPING["prediction_mapping"]
SPACY_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf")
WARM_UP_TEXT = "Warm-up: John Smith mailed a@example.com from Paris, call 212-555-0100, see https://example.com."


@dataclass(frozen=True)
class Sample:
    text: str
    gold: tuple[Span, ...]
    dont_care: tuple[Region, ...] = ()


@dataclass
class Dataset:
    name: str
    samples: list[Sample]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class System:
    name: str
    analyze: Callable[[str], list[Prediction]]
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- datasets


def _gold_counts(samples: Sequence[Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        for _, _, entity in sample.gold:
            counts[entity] = counts.get(entity, 0) + 1
    return dict(sorted(counts.items()))


def load_synth(path: Path, limit: int | None = None) -> Dataset:
    """Presidio synth v2, even template ids only; gold mapped per LABEL_MAPPING["synth"]."""
    records = json.loads(path.read_text(encoding="utf-8"))
    samples, unknown = [], set()
    for record in records:
        if int(record["template_id"]) % 2:
            continue
        text = record["full_text"]
        gold, dont_care = [], []
        for span in record["spans"]:
            start, end = trim_span(text, span["start_position"], span["end_position"])
            mapped = SYNTH_GOLD.get(span["entity_type"])
            if mapped is None:  # TITLE, AGE (and any unknown type): not scored
                dont_care.append((start, end))
                unknown.add(span["entity_type"])
            elif start < end:
                gold.append((start, end, mapped))
        samples.append(Sample(text, tuple(gold), tuple(dont_care)))
        if limit is not None and len(samples) >= limit:
            break
    info = {"path": str(path), "records": len(records), "evaluated": len(samples),
            "gold_spans": _gold_counts(samples), "dont_care_types": sorted(unknown)}  # fmt: skip
    return Dataset("synth", samples, info)


def bio_to_sample(tokens: Sequence[tuple[str, str]]) -> Sample:
    """A WNUT sentence as text (tokens joined by single spaces), gold spans and don't-care regions."""
    text, spans = bio_spans(tokens)
    gold = tuple((s, e, WNUT_GOLD[label]) for s, e, label in spans if label in WNUT_GOLD)
    dont_care = tuple((s, e) for s, e, label in spans if label not in WNUT_GOLD)
    return Sample(text, gold, dont_care)


def load_wnut(path: Path, limit: int | None = None) -> Dataset:
    sentences = bio_sentences(path.read_text(encoding="utf-8").splitlines())
    samples = [bio_to_sample(sentence) for sentence in sentences[:limit]]
    info = {"path": str(path), "records": len(sentences), "evaluated": len(samples),
            "gold_spans": _gold_counts(samples), "dont_care_spans": sum(len(s.dont_care) for s in samples)}  # fmt: skip
    return Dataset("wnut", samples, info)


# ---------------------------------------------------------------- systems


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def build_proxy(policy_path: Path, ner: str | None) -> System:
    """The proxy's detector and thresholds from a policy file; `ner` replaces detection.ner."""
    from privacy_proxy.policy.engine import CompiledRules
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import detector_settings
    from sanitizers.detect import Detector

    loaded = load_policy(policy_path)
    policy = loaded.policy
    update: dict[str, Any] = {"cache_size": 0}
    if ner is not None:
        update["ner"] = ner
    # Validate the override like a policy file would be (an unknown NER spec fails here, not later).
    detection = type(policy.detection).model_validate({**policy.detection.model_dump(), **update})
    policy = policy.model_copy(update={"detection": detection})
    detector = Detector(detector_settings(policy))
    rules = CompiledRules.from_policy(policy)

    def analyze(text: str) -> list[Prediction]:
        return [
            Prediction(d.start, d.end, d.entity, d.score) for d in detector.analyze(text) if rules.passes_threshold(d)
        ]

    name = f"proxy:{policy_path.stem}" + (f"[ner={ner}]" if ner is not None else "")
    info = {"policy": str(policy_path), "policy_sha256": loaded.sha256, "ner": policy.detection.ner,
            "score_threshold": policy.detection.score_threshold,
            "entity_thresholds": dict(policy.detection.entity_thresholds)}  # fmt: skip
    return System(name, analyze, info)


def _presidio_parts() -> Any:
    """The module holding the offline Presidio pieces (moved from sanitizers.detect to presidio_engine)."""
    try:
        from sanitizers import presidio_engine

        return presidio_engine
    except ImportError:
        from sanitizers import detect

        return detect


def _presidio_engine(threshold: float, spacy_model: str | None) -> tuple[Any, list[str]]:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    parts = _presidio_parts()
    if spacy_model is None and hasattr(parts, "build_presidio_analyzer"):
        engine = parts.build_presidio_analyzer(["en"], min_score=threshold)  # the project's own baseline
        return engine, sorted(r.name for r in engine.registry.recognizers)
    if spacy_model is None:
        nlp_engine: Any = parts.BlankSpacyNlpEngine(["en"])
    else:
        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": spacy_model}])
        nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    for recognizer in list(registry.recognizers):
        if isinstance(recognizer, EmailRecognizer) or (spacy_model is None and recognizer.name == "SpacyRecognizer"):
            registry.remove_recognizer(recognizer.name)
    registry.add_recognizer(parts.OfflineEmailRecognizer(supported_language="en"))
    engine = AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=["en"], default_score_threshold=threshold
    )
    return engine, sorted(r.name for r in registry.recognizers)


def build_presidio(threshold: float, spacy_model: str | None = None) -> System:
    engine, recognizers = _presidio_engine(threshold, spacy_model)

    def analyze(text: str) -> list[Prediction]:
        results = engine.analyze(text=text, language="en")
        return [Prediction(r.start, r.end, r.entity_type, float(r.score)) for r in results]

    name = "presidio" if spacy_model is None else f"presidio+spacy:{spacy_model}"
    info = {"presidio_analyzer": _version("presidio-analyzer"), "score_threshold": threshold,
            "nlp_engine": spacy_model or "blank spaCy (no NER)", "recognizers": recognizers}  # fmt: skip
    return System(name, analyze, info)


def system_builders(args: argparse.Namespace) -> list[tuple[str, Callable[[], System]]]:
    """(name, builder) for every requested system; building happens later, one at a time."""
    builders: list[tuple[str, Callable[[], System]]] = []
    if "proxy" in args.systems:
        for policy in args.policy:
            for ner in args.ner or [None]:
                label = f"proxy:{Path(policy).stem}" + (f"[ner={ner}]" if ner is not None else "")
                builders.append((label, lambda p=Path(policy), n=ner: build_proxy(p, n)))
    if "presidio" in args.systems:
        builders.append(("presidio", lambda: build_presidio(args.presidio_threshold)))
    if "presidio+spacy" in args.systems:
        import spacy.util

        models = args.spacy_model or [m for m in SPACY_MODELS if spacy.util.is_package(m)]
        if not models:
            builders.append(("presidio+spacy", _missing_spacy_model))
        for model in models:
            builders.append((f"presidio+spacy:{model}", lambda m=model: _presidio_spacy(m, args.presidio_threshold)))
    return builders


def _missing_spacy_model() -> System:
    raise RuntimeError(f"no spaCy model package installed (looked for {', '.join(SPACY_MODELS)})")


def _presidio_spacy(model: str, threshold: float) -> System:
    import spacy.util

    if not spacy.util.is_package(model):
        raise RuntimeError(f"spaCy model package {model!r} is not installed")
    return build_presidio(threshold, model)


# ---------------------------------------------------------------- evaluation


def evaluate(system: System, dataset: Dataset) -> dict[str, Any]:
    """Counts per matching and timings of one system over one dataset."""
    scored = set(LABEL_MAPPING[dataset.name]["scored"])
    tables: dict[str, CountsByEntity] = {"span_loose": {}, "span_exact": {}}
    if dataset.name == "synth":
        tables["token"] = {}
    timer = Timer()
    for sample in dataset.samples:
        started = time.perf_counter()
        raw = system.analyze(sample.text)
        timer.add(time.perf_counter() - started, len(sample.text))
        predictions = []
        for p in raw:
            entity = PREDICTION_MAPPING.get(p.entity, p.entity)
            if entity in scored:
                start, end = trim_span(sample.text, p.start, p.end)
                if start < end:
                    predictions.append(Prediction(start, end, entity, p.score))
        merge(tables["span_loose"], loose_span_counts(sample.gold, predictions, sample.dont_care))
        merge(tables["span_exact"], exact_span_counts(sample.gold, predictions, sample.dont_care))
        if "token" in tables:
            tokens = tokenize(sample.text)
            merge(tables["token"], token_counts(tokens, sample.gold, predictions, sample.dont_care))
    result = {kind: summarize(table) for kind, table in tables.items()}
    result["speed"] = timer.as_dict()
    return result


def format_table(dataset: str, info: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    """Entities as rows, systems as columns; each cell holds P R F1 F2 of the primary matching."""
    mapping = LABEL_MAPPING[dataset]
    primary, secondary = mapping["primary"], mapping["secondary"]
    names = list(results)
    width = max([19, *map(len, names)])
    entities = sorted({e for r in results.values() for e in r[primary]["per_entity"]})
    support = info["gold_spans"]
    lines = [
        f"== {dataset}: {info['evaluated']} samples; primary {primary}, secondary {secondary}; cells: P R F1 F2",
        f"{'entity':<20}{'gold':>6}  " + "  ".join(f"{n:>{width}}" for n in names),
    ]

    def cell(figures: dict[str, Any]) -> str:
        text = " ".join(f"{figures[k]:.2f}" for k in ("precision", "recall", "f1", "f2"))
        return f"{text:>{width}}"

    for entity in entities:
        cells = [cell(r[primary]["per_entity"].get(entity) or _zero()) for r in results.values()]
        lines.append(f"{entity:<20}{support.get(entity, 0):>6}  " + "  ".join(cells))
    for kind in (primary, secondary):
        cells = [cell(r[kind]["overall"]) for r in results.values()]
        lines.append(f"{'ALL (' + kind + ')':<20}{'':>6}  " + "  ".join(cells))
    for key, label in (("chars_per_s", "chars/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms")):
        cells = [f"{r['speed'][key]:>{width}.1f}" for r in results.values()]
        lines.append(f"{label:<20}{'':>6}  " + "  ".join(cells))
    return "\n".join(lines)


def _zero() -> dict[str, float]:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "f2": 0.0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder")
    parser.add_argument("--synth", type=Path, help="presidio synth v2 JSON (default: <data>/presidio_synth/...)")
    parser.add_argument("--wnut", type=Path, help="WNUT-17 dev CoNLL (default: <data>/wnut17/emerging.dev.conll)")
    parser.add_argument("--datasets", nargs="+", choices=["synth", "wnut"], default=["synth", "wnut"])
    parser.add_argument("--policy", nargs="+", default=[str(ROOT / "policies" / "default.yaml")])
    parser.add_argument("--ner", nargs="+", help="override detection.ner: none, builtin, spacy:/path, ...")
    parser.add_argument("--systems", nargs="+", choices=["proxy", "presidio", "presidio+spacy"],
                        default=["proxy", "presidio", "presidio+spacy"])  # fmt: skip
    parser.add_argument("--presidio-threshold", type=float, default=0.0, help="Presidio score threshold")
    parser.add_argument("--spacy-model", nargs="+", help="spaCy model packages for presidio+spacy")
    parser.add_argument("--limit", type=int, help="evaluate the first N samples of each dataset")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, if a system uses torch")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "detection.json")
    parser.add_argument("--quiet", action="store_true", help="no table on stdout")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    datasets = []
    if "synth" in args.datasets:
        datasets.append(load_synth(args.synth or args.data / "presidio_synth" / "synth_dataset_v2.json", args.limit))
    if "wnut" in args.datasets:
        datasets.append(load_wnut(args.wnut or args.data / "wnut17" / "emerging.dev.conll", args.limit))
    result: dict[str, Any] = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "limit": args.limit, "policies": list(args.policy), "ner": args.ner, "systems": args.systems,
            "presidio_threshold": args.presidio_threshold, "threads": args.threads,
            "python": platform.python_version(), "platform": platform.platform(),
            "presidio_analyzer": _version("presidio-analyzer"), "spacy": _version("spacy"),
        },  # fmt: skip
        "label_mapping": LABEL_MAPPING,
        "systems": {},
        "skipped": [],
        "datasets": {d.name: {"info": d.info, "results": {}} for d in datasets},
    }
    for name, build in system_builders(args):
        started = time.perf_counter()
        try:
            system = build()
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(args.threads)
            system.analyze(WARM_UP_TEXT)
        except Exception as exc:  # noqa: BLE001 - a system that cannot be built is reported, not fatal
            result["skipped"].append({"system": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"skipped {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        result["systems"][system.name] = {**system.info, "build_s": round(time.perf_counter() - started, 3)}
        for dataset in datasets:
            try:
                result["datasets"][dataset.name]["results"][system.name] = evaluate(system, dataset)
            except Exception as exc:  # noqa: BLE001
                result["skipped"].append({"system": system.name, "dataset": dataset.name,
                                          "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
        del system  # free its models before building the next one
    for dataset in datasets:
        entry = result["datasets"][dataset.name]
        if entry["results"] and not args.quiet:
            print(format_table(dataset.name, entry["info"], entry["results"]) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
