"""Task splitting (task division): only the non-sensitive part of a prompt goes to the cloud; the answer
is composed on the device.

    Splitter(SplitOptions(...), topics=TopicClassifier()).plan(text, protected, mapping=None) -> SplitPlan
    plan.subtasks[i].messages()        what to send to the cloud, one request per sub-task
    plan.compose(cloud_answers)        templated composition (placeholders restored), no SLM
    plan.composition_messages(answers) the prompt for SLM composition (sketch mode: fill the draft)
    plan.leaks()                       [] unless a protected value or a withheld sentence would leave
    plan.fallback                      None, or what to do when nothing can leave: abstract | local | block
    plan.summary()                     value-free counts for the audit log and headers

Steps: sentences, then clauses where a sentence mixes private context and a request ("I have diabetes,
so can you suggest a meal plan?"); each unit is a task (question or instruction) or context, and
sensitive by topic (a sensitive topic at or above the threshold) or by entity (holds a protected value).
- direct mode: clean units go out as they are, task units holding only entities go out with placeholders,
  topic-sensitive units and entity-bearing context stay on the device (`private_context`);
- sketch mode (CoGenesis-style): the task units go out generalized — entities and the sensitive phrases
  the topic lexicon found become placeholders — asking for a generic draft that the device fills in.
No task left to send → `fallback`. `protected` are the detections the policy protects, in `text`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sanitizers import prompts
from sanitizers.pseudonymize import normalize_value, value_pattern
from sanitizers.restore import Restorer
from sanitizers.segment import clause_spans
from sanitizers.topics import TopicClassifier
from sanitizers.types import Detection, Mapping

__all__ = ["SplitOptions", "SplitPlan", "Splitter", "SubTask", "Unit", "is_task"]

_VERBS = (
    "write|draft|compose|create|make|generate|give|tell|list|suggest|recommend|explain|summari[sz]e|translate|"
    "rewrite|rephrase|paraphrase|edit|fix|correct|proofread|improve|plan|outline|describe|compare|analy[sz]e|"
    "calculate|compute|convert|find|help|show|provide|prepare|design|build|review|check|format|answer|respond|"
    "reply|advise|propose|brainstorm|estimate|identify|define|teach|simplify|shorten|expand|continue|finish|"
    "complete|organi[sz]e|schedule|send|let|turn|use|add|include|keep|act|pretend|imagine|assume|classify|"
    "extract|sort|name|recommend|evaluate|assess|predict|solve|code|implement|debug|refactor|rank|pick|choose"
)
_TASK = re.compile(
    rf"^(?:[-*•\d.)\s]*)(?:(?:please|pls|kindly|now|also|then|and|so|but)\s+)*(?:{_VERBS})\b"
    r"|\b(?:can|could|would|will)\s+you\b|\b(?:i\s+need|i\s+want|i'd\s+like|i\s+would\s+like)\s+(?:you\s+)?to\b"
    r"|\bhelp\s+me\b|\bplease\b|^(?:how|what|why|when|where|which|who|whom|whose|should|is|are|do|does|did|can|could)\b",
    re.IGNORECASE,
)


def is_task(sentence: str) -> bool:
    """A question or an instruction (rule-based, English)."""
    s = sentence.strip()
    return s.endswith("?") or bool(_TASK.search(s))


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    task: bool
    sensitive: bool
    reasons: tuple[str, ...] = ()  # "topic:health", "entity:PERSON" — value-free


@dataclass
class SubTask:
    text: str  # what the cloud sees: never a protected value
    units: tuple[int, ...]
    mode: str = "direct"

    def messages(self) -> list[dict[str, str]]:
        return prompts.cloud_messages(self.text, self.mode)


@dataclass(frozen=True)
class SplitOptions:
    mode: str = "direct"  # direct | sketch
    topic_threshold: float = 0.5
    fallback: str = "abstract"  # abstract | local | block
    clauses: bool = True
    # Entity-bearing context sentences stay local (minimal disclosure); True sends them with placeholders.
    context_with_placeholders: bool = False


@dataclass
class SplitPlan:
    request: str = field(repr=False)  # the original prompt: stays on the device
    units: list[Unit]
    subtasks: list[SubTask]
    private_context: list[str] = field(repr=False)
    mapping: Mapping = field(repr=False)
    mode: str = "direct"
    fallback: str | None = None

    def outbound(self) -> list[str]:
        return [s.text for s in self.subtasks]

    def summary(self) -> dict[str, object]:
        reasons = sorted({r for u in self.units for r in u.reasons})
        return {"mode": self.mode, "units": len(self.units), "sensitive_units": sum(u.sensitive for u in self.units),
                "task_units": sum(u.task for u in self.units), "subtasks": len(self.subtasks),
                "fallback": self.fallback, "reasons": reasons}

    def leaks(self) -> list[str]:
        """What of the request would leave: "entity" (a protected value), "sentence:<i>" (a withheld unit)."""
        out = "\n".join(self.outbound())
        found = []
        pattern = value_pattern(self.mapping.protected)
        if pattern is not None and pattern.search(out):
            found.append("entity")
        folded = normalize_value(out)
        for index, unit in enumerate(self.units):
            withheld = not any(index in s.units for s in self.subtasks)
            piece = normalize_value(self.request[unit.start:unit.end])
            if withheld and unit.sensitive and len(piece) > 12 and piece in folded:
                found.append(f"sentence:{index}")
        return found

    def compose(self, cloud_answers: Sequence[str]) -> str:
        """Templated composition: the cloud's answers with every placeholder put back."""
        restorer = Restorer(self.mapping.restorable)
        return "\n\n".join(restorer.restore(answer) for answer in cloud_answers if answer)

    def composition_messages(self, cloud_answers: Sequence[str]) -> list[dict[str, str]]:
        """The SLM prompt: restored cloud answer(s) + the private context → the final answer."""
        restored = [self.compose([a]) for a in cloud_answers]
        if self.mode == "sketch":
            return prompts.fill_sketch_messages(self.request, "\n\n".join(restored), self.private_context)
        return prompts.composition_messages(self.request, self.private_context, restored)


class Splitter:
    """Built once per policy; `plan` is pure (thread-safe)."""

    def __init__(self, options: SplitOptions | None = None, topics: TopicClassifier | None = None) -> None:
        self.options = options or SplitOptions()
        self.topics = topics or TopicClassifier()

    def plan(self, text: str, protected: Sequence[Detection], mapping: Mapping | None = None) -> SplitPlan:
        """`mapping`: the request's token → original map from the transform, so the same value keeps
        its token; new tokens continue its numbering."""
        o = self.options
        report = self.topics.analyze(text)
        tokens = _Tokens(mapping)
        units = self._units(text, protected, report)
        if not any(u.task for u in units) and units:  # no recognizable request: the last unit is the ask
            last = units[-1]
            units[-1] = Unit(last.start, last.end, True, last.sensitive, last.reasons)
        private = [text[u.start:u.end] for u in units if u.sensitive]
        hits = [h for s in report.sentences for h in s.hits if s.scores.get(h.topic, 0) >= o.topic_threshold]
        subtasks: list[SubTask] = []
        if o.mode == "sketch":
            chosen = [i for i, u in enumerate(units) if u.task]
            pieces = [tokens.rewrite(text, units[i], protected, hits) for i in chosen]
            subtasks.append(SubTask(_tidy(" ".join(pieces)), tuple(chosen), "sketch"))
        else:
            chosen = []
            for i, u in enumerate(units):
                topical = any(r.startswith("topic:") for r in u.reasons)
                entity_only = u.sensitive and not topical
                if not u.sensitive or (entity_only and (u.task or o.context_with_placeholders)):
                    chosen.append(i)
            if any(units[i].task for i in chosen):
                text_out = _tidy(" ".join(tokens.rewrite(text, units[i], protected, ()) for i in chosen))
                subtasks.append(SubTask(text_out, tuple(chosen), "direct"))
        plan = SplitPlan(text, units, subtasks, private, tokens.mapping(protected, text), o.mode)
        if not subtasks:
            plan.fallback = o.fallback
        return plan

    def _units(self, text: str, protected: Sequence[Detection], report: object) -> list[Unit]:
        o = self.options
        units: list[Unit] = []
        for sentence in report.sentences:  # type: ignore[attr-defined]
            spans = [(sentence.start, sentence.end)]
            if o.clauses:
                spans = clause_spans(text, sentence.start, sentence.end) or spans
            for start, end in spans:
                if len(spans) == 1:
                    topics = [t for t, s in sentence.scores.items() if s >= o.topic_threshold]
                else:  # a clause is sensitive when it holds the evidence of a sensitive sentence topic
                    topics = [t for t in sorted({h.topic for h in sentence.hits if start <= h.start < end})
                              if sentence.scores.get(t, 0) >= o.topic_threshold]
                entities = sorted({d.entity for d in protected if d.start < end and d.end > start})
                reasons = tuple([f"topic:{t}" for t in topics] + [f"entity:{e}" for e in entities])
                units.append(Unit(start, end, is_task(text[start:end]), bool(reasons), reasons))
        return units


def _tidy(text: str) -> str:
    """A clause cut out of a sentence reads as one: no leading conjunction, a capital, no dangling comma."""
    text = re.sub(r"^(?:so|and|but|because|since|although|though|while|whereas|which)\s+", "", text.strip(),
                  flags=re.IGNORECASE)
    text = re.sub(r"[,;]\s*$", ".", text)
    return text[:1].upper() + text[1:]


class _Tokens:
    """Placeholders for what leaves: the transform's tokens where it has them, new ones numbered after."""

    def __init__(self, mapping: Mapping | None) -> None:
        self.restorable: dict[str, str] = dict(mapping.restorable) if mapping else {}
        self.protected: set[str] = set(mapping.protected) if mapping else set()
        self.by_value = {normalize_value(v): t for t, v in self.restorable.items()}
        self.counters: dict[str, int] = {}
        for token in self.restorable:
            if m := re.fullmatch(r"\[([A-Z][A-Z0-9_]*)_(\d+)\]", token):
                self.counters[m.group(1)] = max(self.counters.get(m.group(1), 0), int(m.group(2)))

    def token(self, entity: str, value: str) -> str:
        key = normalize_value(value)
        if key not in self.by_value:
            self.counters[entity] = self.counters.get(entity, 0) + 1
            token = f"[{entity}_{self.counters[entity]}]"
            self.by_value[key] = token
            self.restorable[token] = value
        self.protected.add(value)
        return self.by_value[key]

    def rewrite(self, text: str, unit: Unit, protected: Sequence[Detection], hits: Sequence[object]) -> str:
        spans = [(d.start, d.end, d.entity) for d in protected if unit.start <= d.start and d.end <= unit.end]
        spans += [(h.start, h.end, "DETAIL") for h in hits if unit.start <= h.start and h.end <= unit.end]  # type: ignore[attr-defined]
        pieces, cursor = [], unit.start
        for start, end, entity in sorted(spans):
            if start < cursor:
                continue
            pieces.append(text[cursor:start])
            pieces.append(self.token(entity, text[start:end]))
            cursor = end
        pieces.append(text[cursor:unit.end])
        return "".join(pieces)

    def mapping(self, protected: Sequence[Detection], text: str) -> Mapping:
        for d in protected:
            self.protected.add(text[d.start:d.end])
        return Mapping(restorable=dict(self.restorable), protected=set(self.protected))

