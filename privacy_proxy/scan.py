"""`privacy-proxy scan`: the pipeline without a network, JSONL in → JSONL out.

Each input line is `{"id": …, "text": "…"}` (one user message) or `{"id": …, "messages": [...]}`; each output line
is `{"id", "decision", "outbound", "entities"}` (plus `trace` with --explain, `error` and `reason` on a block).
Entity offsets point into the input `text`, or into the segment named by `segment` for messages.

When the policy has a strategy other than forward, or routing rules, the strategy applies (strategies.py):
`decision` is forward | block | local, `outbound` is what would leave (abstracted texts, the split sub-task,
nothing for local), and `strategy`, `routing_rule`, `topics`, `subtasks`, `fallback` say how it was decided.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from privacy_proxy import strategies
from privacy_proxy.errors import PolicyViolation, ProxyError
from privacy_proxy.openai.chat import ChatRequest
from privacy_proxy.pipeline import Exchange, guard, routes_requests, sanitize_texts
from privacy_proxy.runtime import Runtime


def _segments(item: dict[str, Any], runtime: Runtime) -> tuple[list[str], list[str] | None, ChatRequest]:
    """Texts to scan, their paths (None for plain text: one user message), and the request they form."""
    non_text = runtime.policy.content.non_text_parts
    if isinstance(item.get("text"), str):
        request = ChatRequest({"model": "scan", "messages": [{"role": "user", "content": item["text"]}]}, non_text)
        return [item["text"]], None, request
    if isinstance(item.get("messages"), list):
        request = ChatRequest({"model": "scan", "messages": item["messages"]}, non_text_parts=non_text)
        return [s.text for s in request.segments], [s.path for s in request.segments], request
    raise ValueError("each line needs a string 'text' or an array 'messages'")


def scan_item(item: Any, runtime: Runtime, explain: bool = False) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"id": None, "decision": "block", "outbound": [], "entities": [], "error": "a line must be a JSON object"}
    out: dict[str, Any] = {"id": item.get("id"), "decision": "forward", "outbound": [], "entities": []}
    try:
        texts, paths, request = _segments(item, runtime)
        sanitized = sanitize_texts(runtime, texts)
    except (ProxyError, ValueError) as exc:
        message = exc.message if isinstance(exc, ProxyError) else str(exc)
        return {**out, "decision": "block", "error": message}
    result = sanitized.result
    for index, segment_spans in enumerate(result.spans):
        for start, end, decision in segment_spans:
            entity = {
                "type": decision.detection.entity,
                "start": start,
                "end": end,
                "score": decision.detection.score,
                "action": decision.action.value,
            }
            if paths is not None:
                entity["segment"] = paths[index]
            out["entities"].append(entity)
    if explain:
        out["trace"] = _trace(runtime, sanitized, paths)
    if result.blocked_entities:
        out["decision"], out["blocked"] = "block", sorted(result.blocked_entities)
        return out
    exchange = Exchange(request_id="scan", route="scan", runtime=runtime, mapping=result.mapping)
    texts_out = list(result.texts)
    try:
        if routes_requests(runtime):
            texts_out = _strategy(runtime, request, sanitized, exchange, out)
        if texts_out:
            guard(exchange, request.outbound(texts_out) if out.get("strategy") != "split" else {"t": texts_out})
    except ProxyError as exc:
        reason = exc.reason if isinstance(exc, PolicyViolation) else exc.code
        return {**out, "decision": "block", "reason": reason, "error": exc.message}
    out["outbound"] = texts_out
    return out


def _strategy(runtime: Runtime, request: ChatRequest, sanitized: Any, exchange: Exchange,
              out: dict[str, Any]) -> list[str]:
    """What would leave under the policy's strategy (strategies.py): the texts sent upstream — for split the
    messages of the sub-task request after the proxy's own cloud instructions; nothing for local."""
    plan = strategies.plan(runtime, request, sanitized.result, sanitized.decisions)
    fallbacks = list(plan.fallbacks)
    out.update({"strategy": plan.strategy, "routing_rule": plan.routing.rule_id})
    if plan.routing.topics:
        out["topics"] = plan.routing.topics
    texts: list[str] = []
    if plan.strategy == "local":
        out["decision"] = "local"
    elif plan.split is not None:
        out["subtasks"] = len(plan.split_bodies)
        texts = [m["content"] for body in plan.split_bodies for m in body["messages"][1:]]
        exchange.mapping = plan.split.mapping
    else:
        texts = list(plan.result.texts)
        exchange.mapping = plan.result.mapping
        if plan.rewrite_segment is not None:
            texts, fallback = strategies.rewrite_now(runtime, request, plan)
            fallbacks += [fallback] if fallback else []
    if fallbacks:
        out["fallback"] = fallbacks
    return texts


def _trace(runtime: Runtime, sanitized: Any, paths: list[str] | None) -> list[dict[str, Any]]:
    """Every detection with its threshold, the rule that decided it, and what happened to it."""
    trace = []
    kept_sets = [{(s, e, d.detection.entity) for s, e, d in spans} for spans in sanitized.result.spans]
    for index, detections in enumerate(sanitized.detections):
        for detection in detections:
            action, rule_id = runtime.rules.rule_for(detection.entity)
            threshold = runtime.rules.entity_thresholds.get(detection.entity, runtime.rules.threshold)
            if detection.score < threshold:
                outcome = "below_threshold"
            elif (detection.start, detection.end, detection.entity) in kept_sets[index]:
                outcome = "applied"
            else:
                outcome = "overlapped"
            step = {
                "type": detection.entity,
                "start": detection.start,
                "end": detection.end,
                "score": detection.score,
                "recognizer": detection.recognizer,
                "threshold": threshold,
                "rule": rule_id,
                "action": action.value,
                "outcome": outcome,
            }
            if paths is not None:
                step["segment"] = paths[index]
            trace.append(step)
    propagated = [
        {"type": d.detection.entity, "start": s, "end": e, "rule": "propagation", "action": d.action.value,
         "outcome": "applied", **({"segment": paths[i]} if paths else {})}
        for i, spans in enumerate(sanitized.result.spans)
        for s, e, d in spans
        if d.rule_id == "propagation"
    ]
    return trace + propagated


def scan_line(number: int, line: str, runtime: Runtime, explain: bool = False) -> dict[str, Any] | None:
    """The record for input line `number` (1-based; error messages name it), None for a blank line."""
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return {"id": None, "decision": "block", "outbound": [], "entities": [],
                "error": f"line {number} is not valid JSON"}
    return scan_item(item, runtime, explain)


def format_record(record: dict[str, Any]) -> str:
    """One output line. Every engine writes through this, so their outputs are byte-identical."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def scan_batch(first_line: int, lines: Iterable[str], runtime: Runtime, explain: bool = False) -> str:
    """The output text of consecutive input lines starting at line `first_line`: what a worker returns."""
    parts = []
    for number, line in enumerate(lines, start=first_line):
        record = scan_line(number, line, runtime, explain)
        if record is not None:
            parts.append(format_record(record))
    return "".join(parts)


def scan_lines(lines: Iterable[str], runtime: Runtime, explain: bool = False) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        record = scan_line(number, line, runtime, explain)
        if record is not None:
            yield record
