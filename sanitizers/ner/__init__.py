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
