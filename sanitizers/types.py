"""Values passed between the text-level stages. None of them holds raw PII except `Mapping`,
which stays inside one request and is never logged, audited or returned to a client."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    MASK = "mask"
    PSEUDONYMIZE = "pseudonymize"
    HASH = "hash"
    # A coarser description ("a university", "in my 30s"); not restored: the answer keeps it.
    ABSTRACT = "abstract"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected span: positions and a score, never the matched text."""

    entity: str
    start: int
    end: int
    score: float
    recognizer: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy does with one detection, and which rule said so."""

    detection: Detection
    action: Action
    rule_id: str


@dataclass(slots=True)
class Mapping:
    """Per-request map between what leaves the machine and the originals.

    `restorable` maps an outbound token (``[PERSON_1]`` or a surrogate) to the original value; the
    restorer puts those back into answers. `protected` holds every original value the policy keeps
    on the device, restorable or not; the leak guard checks the outbound body against all of them.
    """

    restorable: dict[str, str] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.restorable or self.protected)
