"""Named-entity recognition: the built-in offline models and the loaders for user-supplied ones.

Every NER backend implements `NerModel`: it takes plain text and returns character spans with one of
the proxy's entity names (PERSON, LOCATION, ORGANIZATION, ...) and a score in [0, 1]. Backends never
download anything; a missing model is a start-up error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Entity names the built-in models are trained to emit.
NER_LABELS = ("PERSON", "LOCATION", "ORGANIZATION")

# A user model's labels → the proxy's entity names. None drops a label; a label not listed keeps its
# own (upper-cased) name, because an unknown label may still be private.
DEFAULT_LABEL_MAP: dict[str, str | None] = {
    "PER": "PERSON", "PERS": "PERSON", "PERSON": "PERSON",
    "LOC": "LOCATION", "GPE": "LOCATION", "LOCATION": "LOCATION", "FAC": "LOCATION",
    "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION", "ORGANISATION": "ORGANIZATION",
    "DATE": "DATE_TIME", "TIME": "DATE_TIME",
    "NORP": "NRP",
    # not personal data: OntoNotes / CoNLL leftovers
    "MISC": None, "CARDINAL": None, "ORDINAL": None, "QUANTITY": None, "PERCENT": None, "MONEY": None,
    "WORK_OF_ART": None, "LAW": None, "LANGUAGE": None, "EVENT": None, "PRODUCT": None,
}  # fmt: skip


def label_mapping(overrides: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """DEFAULT_LABEL_MAP with a policy's `ner_labels` on top (keys upper-cased; "" or "O" drops)."""
    mapping = {**DEFAULT_LABEL_MAP, **{key.upper(): value for key, value in (overrides or {}).items()}}
    return {key: (None if value in (None, "", "O") else value) for key, value in mapping.items()}


def proxy_label(label: str, mapping: dict[str, str | None]) -> str | None:
    upper = label.upper()
    return mapping.get(upper, upper)


@dataclass(frozen=True, slots=True)
class NerSpan:
    label: str
    start: int  # character offsets into the text given to predict(), end exclusive
    end: int
    score: float


class NerModel(Protocol):
    name: str  # shown as the recognizer name in detections and `scan --explain`

    def predict(self, text: str) -> list[NerSpan]: ...


class NerUnavailable(RuntimeError):
    """The configured model cannot be loaded; the message says what to install or where to put it."""
