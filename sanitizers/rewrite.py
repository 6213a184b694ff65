"""Minimal-disclosure rewrite (`strategy: abstract` with `abstraction.use_slm`): the local SLM writes the
prompt the cloud should see (PAPILLON-style); the rules are the fallback; if both fail, block.

    minimal_disclosure(text, detections, abstractor, generate=slm.generate) -> RewriteOutcome
    await aminimal_disclosure(text, detections, abstractor, agenerate=slm.agenerate) -> RewriteOutcome

Order: 1. the SLM's rewrite, accepted only when it is non-empty, not absurdly long and contains none of
the detected values (case-insensitive, whole words — the leak guard's test); 2. else the rule-based
abstraction (sanitizers.abstract), accepted under the same test; 3. else `text` is None: block.
`fallback` says, value-free, why step 1 was not used ("slm_timeout", "slm_unavailable", "slm_error",
"leak", "empty", "no_slm"). The caller should still run detection and the leak guard over the result:
a model can add details the detector did not see in the original.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sanitizers.abstract import AbstractionResult, Abstractor
from sanitizers.prompts import clean_rewrite, minimal_disclosure_messages
from sanitizers.pseudonymize import value_pattern
from sanitizers.types import Detection

__all__ = ["RewriteOutcome", "aminimal_disclosure", "minimal_disclosure"]

Messages = list[dict[str, str]]
_MAX_GROWTH = 3.0  # a "rewrite" three times longer than the request is not a rewrite


@dataclass
class RewriteOutcome:
    text: str | None  # what may leave; None: block
    source: str  # "slm" | "rules" | "none"
    fallback: str | None = None  # why the SLM's rewrite was not used
    abstraction: AbstractionResult | None = None  # the rules' result, when they ran

    @property
    def blocked(self) -> bool:
        return self.text is None


def _hints(detections: Sequence[Detection]) -> list[str]:
    return sorted({f"a {d.entity}" for d in detections})


def _fault(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code.startswith("slm_") else "slm_error"


def _check(text: str, request: str, originals: set[str]) -> str | None:
    """Why a rewrite cannot leave, or None."""
    if not text.strip():
        return "empty"
    if len(text) > _MAX_GROWTH * max(len(request), 80):
        return "too_long"
    pattern = value_pattern(originals)
    if pattern is not None and pattern.search(text):
        return "leak"
    return None


def _rules(text: str, detections: Sequence[Detection], abstractor: Abstractor, fallback: str) -> RewriteOutcome:
    result = abstractor.abstract(text, detections)
    if result.leaks():
        return RewriteOutcome(None, "none", fallback, result)
    return RewriteOutcome(result.text, "rules", fallback, result)


def _accept(text: str, detections: Sequence[Detection], abstractor: Abstractor, rewritten: str) -> RewriteOutcome:
    """The SLM's (cleaned) rewrite when it passes `_check`; else the rules."""
    problem = _check(rewritten, text, {text[d.start:d.end] for d in detections})
    if problem:
        return _rules(text, detections, abstractor, problem)
    return RewriteOutcome(rewritten, "slm")


def minimal_disclosure(text: str, detections: Sequence[Detection], abstractor: Abstractor,
                       generate: Callable[[Messages], str] | None = None) -> RewriteOutcome:
    if generate is None:
        return _rules(text, detections, abstractor, "no_slm")
    try:
        rewritten = clean_rewrite(generate(minimal_disclosure_messages(text, _hints(detections))))
    except Exception as exc:  # noqa: BLE001 - any SLM fault falls back to the rules
        return _rules(text, detections, abstractor, _fault(exc))
    return _accept(text, detections, abstractor, rewritten)


async def aminimal_disclosure(text: str, detections: Sequence[Detection], abstractor: Abstractor,
                              agenerate: Callable[[Messages], Awaitable[str]] | None = None) -> RewriteOutcome:
    if agenerate is None:
        return _rules(text, detections, abstractor, "no_slm")
    try:
        rewritten = clean_rewrite(await agenerate(minimal_disclosure_messages(text, _hints(detections))))
    except Exception as exc:  # noqa: BLE001 - any SLM fault falls back to the rules
        return _rules(text, detections, abstractor, _fault(exc))
    return _accept(text, detections, abstractor, rewritten)
