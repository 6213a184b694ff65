"""Transform: replace what the policy protects, consistently across every segment of a request.

Input: the request's text segments in conversation order, with the decisions for each.
Output: the rewritten segments and a `Mapping`. Tokens are numbered in order of first appearance
in the conversation, so the same history always yields the same tokens: turn 2, which re-sends
turn 1, gets turn 1's tokens without any server state (invariant 3).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from sanitizers.types import Action, Decision, Detection, Mapping

_SEP = r"(?:\\?_|[ \-])"
_PRIOR_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)_[1-9][0-9]*\]")


@functools.lru_cache(maxsize=256)
def _placeholder_spellings(entities: frozenset[str]) -> re.Pattern[str] | None:
    """Every spelling of `[ENTITY_N]` the restorer accepts ("[person 1]", "PERSON_1", …) for these types.

    Built from the type names, so the engine scans for literal words instead of trying every word.
    """
    if not entities:
        return None
    names = "|".join(_SEP.join(re.escape(part) for part in entity.split("_")) for entity in sorted(entities, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?P<t>{names}){_SEP}(?P<n>\d+)(?!\d)", re.IGNORECASE)


def literal_placeholders(text: str, entities: Iterable[str]) -> set[str]:
    """The normalized tokens (``[person_1]``) of these types that `text` already spells in some form.

    One the user typed literally must not be handed out as a token, or restoring would rewrite it.
    """
    pattern = _placeholder_spellings(frozenset(entities))
    if pattern is None:
        return set()
    return {
        normalize_value(f"[{re.sub(_SEP, '_', m.group('t'))}_{m.group('n')}]") for m in pattern.finditer(text)
    }


def sentence_case(before: str, replacement: str) -> str:
    """`replacement` with a capital when a sentence starts with it (`before`: the text just before)."""
    if replacement[:1].islower() and re.search(r"(?:^|[.!?]\s+|\n\s*)$", before):
        return replacement[0].upper() + replacement[1:]
    return replacement


def normalize_value(value: str) -> str:
    return " ".join(value.casefold().split())


def value_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive, whitespace-tolerant alternation of values (longest first)."""
    return _compiled_values(frozenset(v for v in values if len(v.strip()) >= 2))


@functools.lru_cache(maxsize=256)
def _compiled_values(values: frozenset[str]) -> re.Pattern[str] | None:
    # Cached by value set: propagation and the leak guard share one compile per request, and a
    # conversation that re-sends its history reuses it.
    if not values:
        return None
    return re.compile(r"(?<!\w)" + _trie_regex(values) + r"(?!\w)", re.IGNORECASE)


_WHITESPACE_RUN = " "


def _units(value: str) -> list[str]:
    """A value as matching units: characters (case-merged where that keeps one character) and one
    unit per whitespace run."""
    units: list[str] = []
    for index, word in enumerate(value.split()):
        if index:
            units.append(_WHITESPACE_RUN)
        units.extend(ch.lower() if len(ch.lower()) == 1 else ch for ch in word)
    return units


def _trie_regex(values: frozenset[str]) -> str:
    """One regex for many literal values, shaped as a prefix trie.

    Python's `re` tries a flat alternation branch by branch at every position; a trie branches on
    shared prefixes (user1@…, user2@…), which makes scanning a long prompt for hundreds of values
    ~20x faster. Longer matches win, as in a longest-first alternation. Built without recursion so
    a long value cannot exhaust the stack.
    """
    root: dict[str, dict] = {}
    for value in values:
        node = root
        for unit in _units(value):
            node = node.setdefault(unit, {})
        node[""] = {}  # a value ends here
    built: dict[int, str] = {}
    stack: list[tuple[dict[str, dict], bool]] = [(root, False)]
    while stack:
        node, children_built = stack.pop()
        if not children_built:
            stack.append((node, True))
            stack.extend((child, False) for unit, child in node.items() if unit)
            continue
        branches = [
            (r"\s+" if unit == _WHITESPACE_RUN else re.escape(unit)) + built.pop(id(child))
            for unit, child in sorted(node.items())
            if unit
        ]
        ends_here = "" in node
        if not branches:
            built[id(node)] = ""
        elif len(branches) == 1 and not ends_here:
            built[id(node)] = branches[0]
        else:
            built[id(node)] = "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")
    return built[id(root)]


class IntervalSet:
    """Non-overlapping [start, end) spans; `add` refuses a span that overlaps one already held."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> bool:
        index = bisect.bisect_left(self._starts, start)
        if index > 0 and self._ends[index - 1] > start:
            return False
        if index < len(self._starts) and self._starts[index] < end:
            return False
        self._starts.insert(index, start)
        self._ends.insert(index, end)
        return True


@dataclass(frozen=True)
class TransformOptions:
    pseudonym_style: str = "placeholder"  # or "surrogate"
    mask_char: str = "*"
    mask_keep_last: int = 4
    propagate: bool = True
    # Keyed hashes and surrogates must be stable across requests and restarts, yet not guessable.
    secret: bytes = b""


@dataclass
class TransformResult:
    texts: list[str]
    mapping: Mapping
    # Per entity type: (count, action, rule id) — value-free, for the audit log and headers.
    entity_counts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    blocked_entities: list[str] = field(default_factory=list)
    propagated: int = 0
    # `action: abstract`: per entity type, how many values each generalization rule replaced (value-free).
    abstracted: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per segment, the spans acted on (allowed ones included, propagated ones added), by start.
    spans: list[list[tuple[int, int, Decision]]] = field(default_factory=list)


def resolve_overlaps(decisions: Sequence[Decision]) -> list[Decision]:
    """Keep a non-overlapping set: blocks first, then any protective action before `allow` (an allowed
    date must never shadow the phone number it overlaps), then higher score, then the longer span."""
    ranked = sorted(
        decisions,
        key=lambda d: (
            d.action != Action.BLOCK,
            d.action == Action.ALLOW,
            -d.detection.score,
            -(d.detection.end - d.detection.start),
            d.detection.start,
        ),
    )
    taken = IntervalSet()
    kept = [d for d in ranked if taken.add(d.detection.start, d.detection.end)]
    return sorted(kept, key=lambda d: d.detection.start)


class SurrogateFactory:
    """Realistic fake values of the same kind, derived from a keyed hash of the original."""

    _GENERATORS: dict[str, Callable[[object], str]] = {
        "PERSON": lambda f: f.name(),
        "EMAIL_ADDRESS": lambda f: f"{f.user_name()}@example.com",
        "PHONE_NUMBER": lambda f: f.numerify("+1-###-555-####"),
        "LOCATION": lambda f: f.city(),
        "ORGANIZATION": lambda f: f.company(),
        "NRP": lambda f: f.language_name(),
        "IP_ADDRESS": lambda f: f.ipv4_private(),
        "URL": lambda f: f"https://{f.domain_word()}.example.com/",
        "CREDIT_CARD": lambda f: f.credit_card_number(),
        "IBAN_CODE": lambda f: f.iban(),
        "US_SSN": lambda f: f.ssn(),
        "DATE_TIME": lambda f: f.date(),
    }

    def __init__(self, secret: bytes) -> None:
        from faker import Faker  # imported lazily: only the surrogate style pays for it

        self._faker = Faker("en_US")
        self._secret = secret
        self._lock = threading.Lock()

    def supports(self, entity: str) -> bool:
        return entity in self._GENERATORS

    def make(self, entity: str, value: str, attempt: int) -> str:
        seed = hmac.new(self._secret, f"{entity}\x00{normalize_value(value)}\x00{attempt}".encode(), "sha256")
        with self._lock:  # Faker's seeded random is shared state
            self._faker.seed_instance(int.from_bytes(seed.digest()[:8], "big"))
            return self._GENERATORS[entity](self._faker)


class Transformer:
    """Built once per policy; `apply` is called per request and keeps no state between requests."""

    def __init__(self, options: TransformOptions, abstractor: Any | None = None) -> None:
        """`abstractor`: a `sanitizers.abstract.Abstractor` for `action: abstract` (default options if None)."""
        self.options = options
        self._surrogates = SurrogateFactory(options.secret) if options.pseudonym_style == "surrogate" else None
        if abstractor is None:
            from sanitizers.abstract import Abstractor  # it imports this module

            abstractor = Abstractor()
        self.abstractor = abstractor

    def keyed_hash(self, entity: str, value: str) -> str:
        digest = hmac.new(self.options.secret, normalize_value(value).encode(), hashlib.sha256).hexdigest()
        return f"[{entity}:{digest[:10]}]"

    def mask(self, value: str) -> str:
        keep = self.options.mask_keep_last
        alnum_positions = [i for i, ch in enumerate(value) if ch.isalnum()]
        if len(alnum_positions) <= keep * 2:
            keep = 0
        hidden = set(alnum_positions[: len(alnum_positions) - keep])
        return "".join(self.options.mask_char if i in hidden else ch for i, ch in enumerate(value))

    def apply(
        self,
        texts: Sequence[str],
        decisions: Sequence[Sequence[Decision]],
        prior: MappingABC[str, str] | None = None,
    ) -> TransformResult:
        """Rewrite `texts`. `prior` (token → original) holds the tokens of earlier turns that the
        upstream keeps server-side (Responses `previous_response_id`): those values keep their tokens,
        new values get unused ones, and the earlier values are protected here too."""
        result = TransformResult(texts=list(texts), mapping=Mapping())
        kept = [resolve_overlaps(per_segment) for per_segment in decisions]
        for per_segment in kept:
            for decision in per_segment:
                entity = decision.detection.entity
                result.entity_counts[entity] = result.entity_counts.get(entity, 0) + 1
                result.actions.setdefault(entity, decision.action.value)
                result.rules.setdefault(entity, decision.rule_id)
                if decision.action == Action.BLOCK and entity not in result.blocked_entities:
                    result.blocked_entities.append(entity)
        result.spans = [[(d.detection.start, d.detection.end, d) for d in per_segment] for per_segment in kept]
        if result.blocked_entities:
            return result

        literal_text = "\n".join(texts)
        tokens: dict[str, str] = {}  # normalized value → replacement
        counters: dict[str, int] = {}
        # Placeholders the user typed literally are never reused as tokens, or restoring would rewrite them.
        used = literal_placeholders(literal_text, result.entity_counts)
        protected_actions: dict[str, tuple[Action, str]] = {}  # normalized value → (action, entity)

        def replacement_for(decision: Decision, value: str) -> str:
            entity, action = decision.detection.entity, decision.action
            key = normalize_value(value)
            if action == Action.MASK:
                return self.mask(value)
            if action == Action.REDACT:
                return f"[{entity}]"
            if key in tokens:
                return tokens[key]
            if action == Action.HASH:
                token = self.keyed_hash(entity, value)
            elif self._surrogates is not None and self._surrogates.supports(entity):
                token = self._unique_surrogate(entity, value, used, folded_text, protected_pattern)
                result.mapping.restorable[token] = value
            else:
                while True:
                    counters[entity] = counters.get(entity, 0) + 1
                    token = f"[{entity}_{counters[entity]}]"
                    if normalize_value(token) not in used:
                        break
                result.mapping.restorable[token] = value
            used.add(normalize_value(token))
            tokens[key] = token
            return token

        spans = result.spans
        for text, per_segment in zip(texts, kept, strict=True):
            for decision in per_segment:
                if decision.action != Action.ALLOW:
                    det = decision.detection
                    value = text[det.start : det.end]
                    protected_actions.setdefault(normalize_value(value), (decision.action, det.entity))
                    result.mapping.protected.add(value)
        for token, original in (prior or {}).items():
            key = normalize_value(original)
            tokens.setdefault(key, token)
            used.add(normalize_value(token))
            placeholder = _PRIOR_PLACEHOLDER.fullmatch(token)
            protected_actions.setdefault(key, (Action.PSEUDONYMIZE, placeholder.group(1) if placeholder else "PII"))
            result.mapping.protected.add(original)

        # Complete before any replacement is drawn; surrogates must not contain a protected value,
        # nor anything the request already says.
        protected_pattern = value_pattern(list(result.mapping.protected)) if self._surrogates is not None else None
        folded_text = literal_text.casefold() if self._surrogates is not None else ""

        if self.options.propagate and protected_actions:
            self._propagate(texts, spans, result, protected_actions)

        for index, (text, segment_spans) in enumerate(zip(texts, spans, strict=True)):
            segment_spans.sort(key=lambda span: span[0])
            abstractions = self._abstractions(text, segment_spans, result)
            # Tokens are assigned left to right (conversation order); text is rebuilt in one pass.
            pieces, cursor = [], 0
            for start, end, decision in segment_spans:
                if decision.action == Action.ALLOW or start < cursor:
                    continue  # allowed, or inside a region an abstraction already rewrote ("John, my manager,")
                if decision.action == Action.ABSTRACT:
                    edit = abstractions[start]
                    region = max(edit.start, cursor)  # may swallow an article or "at age " before the value
                    pieces.append(text[cursor:region])
                    pieces.append(sentence_case("".join(pieces[-2:]), edit.replacement))
                    cursor = max(end, edit.end)
                    continue
                pieces.append(text[cursor:start])
                pieces.append(replacement_for(decision, text[start:end]))
                cursor = end
            pieces.append(text[cursor:])
            result.texts[index] = "".join(pieces)
        return result

    def _abstractions(
        self, text: str, segment_spans: list[tuple[int, int, Decision]], result: TransformResult
    ) -> dict[int, Any]:
        """`action: abstract` spans of one segment → their edits (sanitizers.abstract), by span start."""
        targets = [Detection(d.detection.entity, s, e, d.detection.score) for s, e, d in segment_spans
                   if d.action == Action.ABSTRACT]
        if not targets:
            return {}
        edits = self.abstractor.edits(text, targets, result.mapping.protected)
        for edit in edits.values():
            per = result.abstracted.setdefault(edit.entity, {})
            per[edit.rule] = per.get(edit.rule, 0) + 1
        return edits

    def _unique_surrogate(
        self, entity: str, value: str, used: set[str], folded_text: str, protected: re.Pattern[str] | None
    ) -> str:
        assert self._surrogates is not None
        for attempt in range(32):
            token = self._surrogates.make(entity, value, attempt)
            key = normalize_value(token)
            # A surrogate holding a protected value ("Anna Smith" for "Smith") would trip the leak guard.
            if protected is not None and protected.search(token):
                continue
            if key not in used and key != normalize_value(value) and token.casefold() not in folded_text:
                return token
        raise RuntimeError("could not draw a unique surrogate")

    @staticmethod
    def _propagate(
        texts: Sequence[str],
        spans: list[list[tuple[int, int, Decision]]],
        result: TransformResult,
        protected_actions: dict[str, tuple[Action, str]],
    ) -> None:
        """Protect further occurrences the detector missed (same value elsewhere, other case)."""
        pattern = value_pattern(result.mapping.protected)
        if pattern is None:
            return
        for text, segment_spans in zip(texts, spans, strict=True):
            taken = IntervalSet()
            for start, end, _ in segment_spans:
                taken.add(start, end)
            for match in pattern.finditer(text):
                start, end = match.span()
                if not taken.add(start, end):
                    continue
                # The regex's case-insensitivity is a little wider than casefold() ("ı" matches "I"): a
                # variant without its own entry is still a protected value, so it is redacted.
                action, entity = protected_actions.get(normalize_value(match.group(0)), (Action.REDACT, "PII"))
                detection = Detection(entity, start, end, 1.0, "propagation")
                segment_spans.append((start, end, Decision(detection, action, "propagation")))
                result.propagated += 1
