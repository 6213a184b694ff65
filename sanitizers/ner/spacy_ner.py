"""spaCy pipelines as `NerModel`s: the built-in fast tier and any user-installed spaCy NER model.

spaCy's transition-based NER gives no calibrated per-entity probability, so every span gets the fixed
score `DEFAULT_SCORE`; policies that threshold on NER scores should treat this tier as "fairly sure".
`spacy.load` never downloads anything: a name that is neither an installed package nor an existing
directory is a start-up error (`NerUnavailable`) that says what to install.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sanitizers.ner import NerSpan, NerUnavailable, label_mapping, proxy_label

# spaCy / OntoNotes / CoNLL label names -> proxy entity names. Labels not listed are dropped.
DEFAULT_SCORE = 0.85
# Components that entity recognition needs; every other pipe (tagger, parser, lemmatizer...) is disabled.
_NEEDED_FACTORIES = frozenset({"ner", "tok2vec", "transformer", "entity_ruler", "span_ruler", "beam_ner"})
# Callers chunk long prompts themselves; this only lifts spaCy's default 1,000,000-character guard.
_MAX_LENGTH = 50_000_000

BUILTIN_FAST_DIR = Path(__file__).resolve().parent / "models" / "fast"


class SpacyNer:
    """A spaCy pipeline with an `ner` component, loaded from a package name or a directory."""

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        label_map: Mapping[str, str] | None = None,
        score: float = DEFAULT_SCORE,
        name: str | None = None,
    ) -> None:
        import spacy  # imported here so that a proxy without NER never pays for it

        target = str(name_or_path)
        path = Path(target).expanduser()
        if path.is_dir():
            if not (path / "config.cfg").is_file():
                raise NerUnavailable(f"spaCy model directory {path} has no config.cfg; is it a spaCy pipeline?")
            source: str | Path = path
        elif spacy.util.is_package(target):
            source = target
        else:
            looks_like_path = any(sep in target for sep in ("/", "\\")) or target.startswith(".")
            hint = (f"the directory {path} does not exist" if looks_like_path
                    else f"install it with `pip install {target}` (or give the path of a spaCy model directory)")
            raise NerUnavailable(f"spaCy model {target!r} is not available: {hint}")
        try:
            nlp = spacy.load(source)
        except (OSError, ValueError, KeyError) as exc:
            raise NerUnavailable(f"spaCy model {target!r} could not be loaded: {exc}") from exc
        if "ner" not in nlp.pipe_names:
            raise NerUnavailable(f"spaCy model {target!r} has no 'ner' component (pipes: {nlp.pipe_names})")
        unneeded = [p for p in nlp.pipe_names if nlp.get_pipe_meta(p).factory not in _NEEDED_FACTORIES]
        if unneeded:
            nlp.select_pipes(disable=unneeded)
        nlp.max_length = _MAX_LENGTH
        self.nlp = nlp
        self.labels = label_mapping(label_map)
        self.score = score
        self.name = name or f"spacy:{path.name if path.is_dir() else target}"

    def predict(self, text: str) -> list[NerSpan]:
        if not text.strip():
            return []
        doc = self.nlp(text)
        spans: list[NerSpan] = []
        for ent in doc.ents:
            label = proxy_label(ent.label_, self.labels)
            if label is None:
                continue
            # Numbers and IDs tagged PERSON are a known false positive of small models.
            if label == "PERSON" and not any(ch.isalpha() for ch in ent.text):
                continue
            spans.append(NerSpan(label, ent.start_char, ent.end_char, self.score))
        return spans


def builtin_fast() -> SpacyNer:
    """The shipped fast tier (a small spaCy NER trained by `sanitizers.ner.train_fast`)."""
    if not (BUILTIN_FAST_DIR / "config.cfg").is_file():
        raise NerUnavailable(
            f"the built-in fast NER model is missing from {BUILTIN_FAST_DIR}; reinstall privacy-proxy or "
            "build it with `python -m sanitizers.ner.train_fast --data ../shared/data --out sanitizers/ner/models/fast`"
        )
    return SpacyNer(BUILTIN_FAST_DIR, name="ner-fast")
