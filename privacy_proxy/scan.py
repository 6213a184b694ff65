"""`privacy-proxy scan`: the pipeline without a network, JSONL in → JSONL out.

Each input line is `{"id": …, "text": "…"}` or `{"id": …, "messages": [...]}`; each output line is
`{"id", "decision", "outbound", "entities"}` (plus `trace` with --explain, `error` on a bad line).
Entity offsets point into the input `text`, or into the segment named by `segment` for messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from privacy_proxy.errors import ProxyError
from privacy_proxy.openai.chat import ChatRequest
from privacy_proxy.pipeline import Exchange, guard, sanitize_texts
from privacy_proxy.runtime import Runtime


def _segments(item: dict[str, Any], runtime: Runtime) -> tuple[list[str], list[str] | None, Any]:
    """Texts to scan, their paths (None for plain text), and a function giving the outbound form."""
    if isinstance(item.get("text"), str):
        return [item["text"]], None, lambda texts: {"text": texts[0]}
    if isinstance(item.get("messages"), list):
        request = ChatRequest(
            {"model": "scan", "messages": item["messages"]}, non_text_parts=runtime.policy.content.non_text_parts
        )
        return [s.text for s in request.segments], [s.path for s in request.segments], request.outbound
    raise ValueError("each line needs a string 'text' or an array 'messages'")


def scan_item(item: Any, runtime: Runtime, explain: bool = False) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"id": None, "decision": "block", "outbound": [], "entities": [], "error": "a line must be a JSON object"}
    out: dict[str, Any] = {"id": item.get("id"), "decision": "forward", "outbound": [], "entities": []}
    try:
        texts, paths, outbound_of = _segments(item, runtime)
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
    outbound_body = outbound_of(result.texts)
    try:
        guard(exchange, outbound_body)
    except ProxyError as exc:
        return {**out, "decision": "block", "error": exc.message}
    out["outbound"] = list(result.texts)
    return out


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


def scan_lines(lines: Iterable[str], runtime: Runtime, explain: bool = False) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            yield {"id": None, "decision": "block", "outbound": [], "entities": [],
                   "error": f"line {number} is not valid JSON"}
            continue
        yield scan_item(item, runtime, explain)
