"""Request strategies (issue 4): which one a scanned request gets, and what it sends. Sync and HTTP-free,
so the proxy and `privacy-proxy scan` share it; the SLM steps that need waiting are in collaborate.py.

    route(runtime, request, result)        -> Routing(strategy, rule_id, topics)
    plan(runtime, request, sanitized)      -> Plan: the strategy that runs, what leaves, the fallbacks taken
    abstract_rewrite(runtime, plan, text)  -> the SLM's rewrite made safe (re-detected, abstracted), or why not

Strategies:
- forward   the transform's texts (tokens, restored in the answer). Today's path.
- abstract  every protected value generalized by the rules (sanitizers.abstract): the transform again with each
            protective action turned into `abstract` (not restored: the answer keeps the generalization). With an
            SLM and `abstraction.use_slm`, the last user message is then rewritten by the SLM (PAPILLON-style);
            the rewrite is re-detected, what it still names is abstracted, and the leak guard runs on the result.
- split     chat only. The last user message is split (sanitizers.split): the cloud gets the cloud instructions,
            the client's system/developer messages that carry no sensitive topic (tokenized), and one user message:
            the non-sensitive sub-task. Earlier turns stay on the device: their context is used by the local
            composer, never sent. Tools are not offered to the cloud. Nothing left to send, or a last message that
            is not the user's → `split.fallback` (abstract | local | block).
- local     chat only. The SLM answers; nothing leaves. No SLM → 422 `local_model_unavailable`.
- block     403 `pii_blocked`, reason `routing_block`.

Entity `block` rules apply under every strategy (they are checked before routing). `fallbacks` are value-free
`stage:reason` names ("split:nothing_to_send", "abstract:no_slm").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from privacy_proxy.errors import (
    LocalModelUnavailable,
    PolicyViolation,
    StrategyNotSupported,
)
from privacy_proxy.openai.request import TextRequest
from privacy_proxy.policy.strategy import choose_strategy
from privacy_proxy.runtime import Runtime
from sanitizers.guard import find_leaks
from sanitizers.prompts import CLOUD_INSTRUCTIONS
from sanitizers.pseudonymize import TransformResult, value_pattern
from sanitizers.rewrite import minimal_disclosure
from sanitizers.split import SplitPlan
from sanitizers.types import Action, Decision, Detection

__all__ = ["Plan", "Routing", "abstract_rewrite", "last_user_text", "plan", "rewrite_now", "rewrite_targets", "route",
           "split_body"]

# Sampling parameters carried over to a split sub-task request (numbers and enums: no text).
CARRIED = ("model", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "presence_penalty",
           "frequency_penalty", "reasoning_effort", "service_tier", "logit_bias")
SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True)
class Routing:
    strategy: str
    rule_id: str  # the routing rule's id, or "strategy" (the policy's default)
    topics: dict[str, float]  # rounded scores above 0


@dataclass
class Plan:
    strategy: str  # what runs after fallbacks: forward | abstract | split | local
    routing: Routing
    result: TransformResult  # forward/abstract: the outbound texts and their mapping; else the scan's
    split: SplitPlan | None = None
    split_bodies: list[dict[str, Any]] = field(default_factory=list)  # one request per sub-task
    fallbacks: list[str] = field(default_factory=list)
    rewrite_segment: int | None = None  # abstract + SLM: the segment the SLM rewrites (the last user message)
    compose_with_slm: bool = False  # split: the SLM composes the final answer
    repersonalize: bool = False  # split/abstract: the SLM adapts the (composed) answer with the private details

    @property
    def local_after(self) -> bool:
        """The answer is written on the device after the cloud's: the upstream is asked without a stream."""
        return self.compose_with_slm or self.repersonalize


def route(runtime: Runtime, request: TextRequest, result: TransformResult) -> Routing:
    """Topic scores of the user's text (lexicon: ~0.1 ms a sentence) and the routing decision."""
    policy = runtime.policy
    scores = runtime.topics.classify("\n".join(request.routing_texts()))
    topics = {topic: round(score, 2) for topic, score in scores.items() if score > 0}
    strategy, rule_id = choose_strategy(policy.strategy, policy.routing, scores, result.entity_counts)
    return Routing(strategy, rule_id, topics)


def _protective(decisions: Sequence[Sequence[Decision]]) -> list[list[Decision]]:
    """The decisions with every protective action (not allow, not block) turned into `abstract`."""
    return [[Decision(d.detection, Action.ABSTRACT, d.rule_id) if d.action not in (Action.ALLOW, Action.BLOCK)
             else d for d in per_segment] for per_segment in decisions]


def abstracted(runtime: Runtime, request: TextRequest, decisions: Sequence[Sequence[Decision]]) -> TransformResult:
    texts = [segment.text for segment in request.segments]
    return runtime.transformer.apply(texts, _protective(decisions), request.prior)


def _content_segments(request: TextRequest, message: int) -> list[int]:
    """Segment indices of message `message`'s content."""
    prefix = f"messages[{message}].content"
    return [i for i, (segment, index) in enumerate(zip(request.segments, request.message_index, strict=True))
            if index == message and segment.path.startswith(prefix)]


def _last_user_segments(request: TextRequest) -> list[int]:
    """Segment indices of the last message's content when that message is the user's; else []."""
    messages = request.body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return []
    if messages[-1].get("role") != "user":
        return []
    return _content_segments(request, len(messages) - 1)


def last_user_text(request: TextRequest) -> str:
    """The last user message's text (all the user's messages when the last one is not theirs)."""
    indices = _last_user_segments(request)
    if not indices:
        indices = [i for i, role in enumerate(request.roles) if role == "user"]
    return "\n\n".join(request.segments[i].text for i in indices)


def _protected_spans(result: TransformResult, index: int, offset: int = 0) -> list[Detection]:
    """The spans of segment `index` that the policy protects (not allowed), shifted by `offset`."""
    return [Detection(d.detection.entity, start + offset, end + offset, d.detection.score)
            for start, end, d in result.spans[index] if d.action != Action.ALLOW]


def _joined(request: TextRequest, result: TransformResult, indices: list[int]) -> tuple[str, list[Detection]]:
    """The texts of these segments joined by blank lines, with their protected spans in the joined text."""
    pieces, protected, offset = [], [], 0
    for i in indices:
        text = request.segments[i].text
        protected.extend(_protected_spans(result, i, offset))
        pieces.append(text)
        offset += len(text) + 2
    return "\n\n".join(pieces), protected


def split_body(runtime: Runtime, request: TextRequest, result: TransformResult, task: str, mode: str,
               stream: bool) -> dict[str, Any]:
    """One sub-task's request: cloud instructions, the client's topic-free system messages (tokenized), the task."""
    body = request.body
    out: dict[str, Any] = {key: body[key] for key in CARRIED if key in body}
    messages: list[dict[str, Any]] = [{"role": "system", "content": CLOUD_INSTRUCTIONS[mode]}]
    threshold = runtime.policy.topics.threshold
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") not in SYSTEM_ROLES:
            continue
        parts = _content_segments(request, index)
        if not parts:
            continue
        original = "\n".join(request.segments[i].text for i in parts)
        if any(score >= threshold for score in runtime.topics.classify(original).values()):
            continue  # context about a sensitive topic stays on the device
        messages.append({"role": message["role"], "content": "\n".join(result.texts[i] for i in parts)})
    messages.append({"role": "user", "content": task})
    out["messages"] = messages
    out["stream"] = stream
    if stream and isinstance(body.get("stream_options"), dict):
        out["stream_options"] = {k: v for k, v in body["stream_options"].items() if isinstance(v, bool)}
    return out


def _split(runtime: Runtime, request: TextRequest, result: TransformResult, out: Plan) -> str | None:
    """Fill `out` with the split; or say why split does not apply."""
    indices = _last_user_segments(request)
    if not indices:
        return "not_user_turn"
    text, protected = _joined(request, result, indices)
    split = runtime.splitter.plan(text, protected, result.mapping)
    if split.fallback or not split.subtasks:
        return "nothing_to_send"
    leaks = split.leaks()
    if leaks:  # the splitter's own check; never expected
        raise PolicyViolation("the split would have sent a protected value or a withheld sentence; "
                              "the request was not forwarded", reason="split_leak")
    policy = runtime.policy
    compose = policy.split.compose
    out.compose_with_slm = compose in ("auto", "slm") and runtime.has_slm
    if compose == "slm" and not runtime.has_slm:
        out.fallbacks.append("compose:no_slm")
    out.repersonalize = policy.split.repersonalize and runtime.has_slm and not out.compose_with_slm
    stream = request.stream and not out.local_after
    out.split = split
    out.split_bodies = [split_body(runtime, request, result, task.text, task.mode, stream) for task in split.subtasks]
    for body in out.split_bodies:
        if find_leaks(body, split.mapping.protected):
            raise PolicyViolation("the leak guard found protected values in the split request; it was not "
                                  "forwarded", reason="leak_guard")
    return None


def plan(runtime: Runtime, request: TextRequest, result: TransformResult,
         decisions: Sequence[Sequence[Decision]], out: Plan | None = None) -> Plan:
    """The strategy for a scanned request (entity blocks already refused), with its fallbacks applied.

    `out`: a plan made by the caller from `route(...)`, filled in place, so that when this raises (a block,
    a 422) the caller still knows the strategy and the fallbacks taken."""
    if out is None:
        routing = route(runtime, request, result)
        out = Plan(routing.strategy, routing, result)
    routing = out.routing
    policy = runtime.policy
    if out.strategy in ("split", "local") and not request.supports_collaboration:
        raise StrategyNotSupported(
            f"the policy's strategy for this request is {out.strategy} (rule {routing.rule_id}), which privacy-proxy "
            "serves on /v1/chat/completions only; nothing was forwarded"
        )
    if out.strategy == "split":
        why = _split(runtime, request, result, out)
        if why:
            out.fallbacks.append(f"split:{why}")
            out.strategy = policy.split.fallback
    if out.strategy == "local" and not runtime.has_slm:
        raise LocalModelUnavailable(
            f"the policy answers this request on the device only (strategy local, rule {routing.rule_id}), "
            "but no local model is configured (slm.backend: none); nothing was forwarded"
        )
    if out.strategy == "block":
        reason = "split_fallback_block" if out.fallbacks else "routing_block"
        raise PolicyViolation(
            f"the policy blocks this request (strategy block, rule {routing.rule_id})", reason=reason,
            entities=list(result.entity_counts),
        )
    if out.strategy == "abstract":
        out.result = abstracted(runtime, request, decisions)
        if policy.abstraction.use_slm:
            indices = _last_user_segments(request) if request.supports_collaboration else []
            if not runtime.has_slm:
                out.fallbacks.append("abstract:no_slm")
            elif len(indices) == 1:
                out.rewrite_segment = indices[0]
            else:
                out.fallbacks.append("abstract:not_applicable")
        out.repersonalize = policy.split.repersonalize and runtime.has_slm and request.supports_collaboration
    return out


def rewrite_targets(request: TextRequest, out: Plan) -> tuple[str, list[Detection]]:
    """The text the SLM rewrites (abstract + use_slm) and its protected spans."""
    assert out.rewrite_segment is not None
    index = out.rewrite_segment
    return request.segments[index].text, _protected_spans(out.result, index)


def rewrite_now(runtime: Runtime, request: TextRequest, out: Plan) -> tuple[list[str], str | None]:
    """The blocking form of the abstract rewrite (for `privacy-proxy scan`): the outbound texts and the
    fallback taken, if any. The proxy does the same off the event loop (collaborate.Collaborator.rewrite)."""
    text, detections = rewrite_targets(request, out)
    outcome = minimal_disclosure(text, detections, runtime.abstractor, generate=runtime.slm.generate)
    texts = list(out.result.texts)
    if outcome.source != "slm" or outcome.text is None:
        return texts, f"abstract:{outcome.fallback or 'slm_error'}"
    safe, why = abstract_rewrite(runtime, out, outcome.text)
    if safe is None:
        return texts, f"abstract:{why}"
    assert out.rewrite_segment is not None
    texts[out.rewrite_segment] = safe
    return texts, None


def abstract_rewrite(runtime: Runtime, out: Plan, rewritten: str) -> tuple[str | None, str | None]:
    """The SLM's rewrite of the last user message made safe to send, or (None, why not).

    Detection runs on it again (a model can name what the detector saw, or something new): protected values it
    still names are abstracted by the rules; a value the policy blocks rejects the rewrite."""
    detections = list(runtime.detector.analyze(rewritten))
    decisions = runtime.rules.decide(detections)
    if any(d.action == Action.BLOCK for d in decisions):
        return None, "redetected_block"
    result = runtime.transformer.apply([rewritten], _protective([decisions]))
    text = result.texts[0]
    pattern = value_pattern(out.result.mapping.protected | result.mapping.protected)
    if pattern is not None and pattern.search(text):
        return None, "leak"
    return text, None
