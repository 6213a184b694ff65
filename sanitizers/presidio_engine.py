"""Presidio's own AnalyzerEngine, offline: the baseline the proxy's pattern tier is measured against.

The proxy does not use it on the request path (see `sanitizers.recognizers`); `bench/` and the
parity tests do. It runs without a spaCy model: a blank pipeline gives tokens and lemmas for
context words, and the email recognizer checks top-level domains on the bundled suffix list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from sanitizers.recognizers.context import lemma

# The bundled public-suffix snapshot; an empty URL tuple means tldextract never fetches the list.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

# Predefined recognizers whose entities come from an NER model; without one they find nothing.
_NER_RECOGNIZERS = {"SpacyRecognizer"}


class BlankSpacyNlpEngine(NlpEngine):
    """Tokens and lemmas from a blank spaCy pipeline: no model, no download, no NER."""

    def __init__(self, languages: Iterable[str] = ("en",)) -> None:
        self.nlp = {}
        for language in languages:
            nlp = spacy.blank(language)
            nlp.max_length = 10**9  # chunking bounds the size; the blank tokenizer is linear
            self.nlp[language] = nlp

    def load(self) -> None:  # built in __init__
        return None

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        doc = self.nlp[language].make_doc(text)
        # Presidio's context enhancer walks the tokens once per match; iterating a Doc builds new
        # Token objects every time (quadratic churn), so hand it each token once, in a list.
        tokens = list(doc)
        return NlpArtifacts(
            entities=[],
            tokens=tokens,  # type: ignore[arg-type]
            tokens_indices=[token.idx for token in tokens],
            lemmas=[lemma(token.text) for token in tokens],
            nlp_engine=self,
            language=language,
        )

    def process_batch(self, texts: Iterable[str], language: str, **_: object) -> Iterator[tuple[str, NlpArtifacts]]:
        for text in texts:
            yield text, self.process_text(text, language)

    def is_stopword(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_stop

    def is_punct(self, word: str, language: str) -> bool:
        return self.nlp[language].vocab[word].is_punct

    def get_supported_entities(self) -> list[str]:
        return []

    def get_supported_languages(self) -> list[str]:
        return list(self.nlp)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with the top-level-domain check done on the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLD(pattern_text).suffix)


def build_presidio_analyzer(languages: Iterable[str] = ("en",), min_score: float = 0.0) -> AnalyzerEngine:
    """Presidio's predefined recognizers for `languages` (minus NER) on the blank pipeline."""
    languages = list(languages)
    registry = RecognizerRegistry(supported_languages=languages)
    registry.load_predefined_recognizers(languages=languages)
    for recognizer in list(registry.recognizers):
        if recognizer.name in _NER_RECOGNIZERS or isinstance(recognizer, EmailRecognizer):
            registry.remove_recognizer(recognizer.name)
    for language in languages:
        registry.add_recognizer(OfflineEmailRecognizer(supported_language=language))
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=BlankSpacyNlpEngine(languages),
        supported_languages=languages,
        default_score_threshold=min_score,
    )
