"""`PatternTier`: Presidio's pattern recognizers, context words and overlap rules, minus the overhead.

What `analyze(text)` does, and where it follows Presidio's `AnalyzerEngine` (blank NLP pipeline):

1. every predefined pattern recognizer of the enabled languages, with Presidio's own patterns,
   scores, `validate_result` / `invalidate_result` (a valid checksum scores 1.0, an invalid one 0,
   dropped), each pattern run only where it can match (`patterns.WindowedPattern`);
   IBAN with Presidio's shorter-group fallback; phone numbers via `phone.PhoneFinder` (0.4);
   custom recognizers' regexes, and all deny lists in one Aho-Corasick pass (`deny.DenyLists`);
2. per recognizer, Presidio's `remove_duplicates` (same type, contained, not better scored);
3. fixed false positive: URLs found inside an e-mail address ("john.do" and "example.com" in
   "john.doe@example.com") are dropped;
4. context words (`context.ContextScorer`): +0.35, at least 0.4, at most 1.0;
5. across recognizers, `remove_duplicates` again; fixed false positive: UK_NHS on a US/CA phone
   number ("212 200 5319" passes the NHS mod-11 check, as about one number in eleven does) is
   dropped unless NHS words are near; then the allow list (case-insensitive here) and the entity
   filter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import regex
from presidio_analyzer import EntityRecognizer, PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    IbanRecognizer,
    PhoneRecognizer,
)

from sanitizers.recognizers import context as ctx
from sanitizers.recognizers.deny import DenyLists, fold
from sanitizers.recognizers.languages import context_words, presidio_recognizers
from sanitizers.recognizers.patterns import Occurrences, WindowedPattern
from sanitizers.recognizers.phone import PhoneFinder
from sanitizers.recognizers.validators import (
    email_domain_ok,
    has_nhs_context,
    is_us_phone,
)
from sanitizers.types import Detection

logger = logging.getLogger(__name__)

PRESIDIO_FLAGS = 26  # re.DOTALL | re.MULTILINE | re.IGNORECASE: the registry's global_regex_flags
EMAIL_SHADOWED = frozenset({"URL", "DOMAIN", "DOMAIN_NAME"})  # never reported inside an e-mail address

# (entity, start, end, score, recognizer index)
_Result = tuple[str, int, int, float, int]


@dataclass(frozen=True)
class CustomSpec:
    """A policy-defined recognizer (same fields as `sanitizers.detect.CustomRecognizer`)."""

    name: str
    entity: str
    patterns: Sequence[tuple[str, str, float]] = ()  # (name, regex, score)
    context: Sequence[str] = ()
    deny_list: Sequence[str] = ()
    deny_list_score: float = 1.0


@dataclass
class _Recognizer:
    name: str
    entity: str
    kind: str  # "pattern", "iban" or "phone"
    patterns: list[tuple[WindowedPattern, float]] = field(default_factory=list)
    context: tuple[str, ...] = ()
    validate: Any = None  # (value) -> bool | None
    invalidate: Any = None
    deny_score: float = 1.0
    languages: list[str] = field(default_factory=list)


def _overridden(recognizer: EntityRecognizer, method: str) -> Any:
    """The recognizer's own `method`, or None where it keeps PatternRecognizer's no-op."""
    if getattr(type(recognizer), method, None) is getattr(PatternRecognizer, method):
        return None
    return getattr(recognizer, method)


def remove_duplicates(results: Iterable[_Result]) -> list[_Result]:
    """Presidio's `EntityRecognizer.remove_duplicates`: drop zero scores, exact repeats, and results
    contained in a result of the same type scored at least as high."""
    unique: dict[tuple[str, int, int, float], _Result] = {}
    for result in results:
        unique.setdefault(result[:4], result)
    ordered = sorted(unique.values(), key=lambda r: (r[0], r[1], r[1] - r[2], -r[3]))
    kept: list[_Result] = []
    for _, same_type in groupby(ordered, key=lambda r: r[0]):
        active: list[_Result] = []
        for result in same_type:
            if result[3] == 0:
                continue
            active = [a for a in active if a[2] >= result[1]]
            if not any(a[1] <= result[1] and result[2] <= a[2] and result[3] <= a[3] for a in active):
                kept.append(result)
                active.append(result)
    return kept


class PatternTier:
    """Fast pattern detection. Thread-safe after construction (all per-call state is local)."""

    def __init__(
        self,
        languages: Sequence[str] = ("en",),
        custom: Sequence[CustomSpec] = (),
        allow_list: Sequence[str] = (),
        entities: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = 0.0,
    ) -> None:
        """`thresholds`/`default_threshold`: the scores below which the caller discards a detection;
        patterns that cannot reach their entity's threshold even with a context word are not run."""
        self.languages = tuple(dict.fromkeys(languages)) or ("en",)
        self.entities = frozenset(entities) if entities else None
        self.allow = frozenset(fold(value) for value in allow_list)
        self.recognizers: list[_Recognizer] = []
        self._build_predefined()
        # Before the policy's own recognizers join: those stay visible in `scan --explain` below threshold.
        self._prune_unreachable(thresholds or {}, default_threshold)
        self._build_custom(custom)
        self.phone = PhoneFinder()
        self.context = ctx.ContextScorer(self.languages)
        needed = self.entities | ({"EMAIL_ADDRESS"} if self.entities & EMAIL_SHADOWED else set()) if self.entities else None
        self._active = [i for i, r in enumerate(self.recognizers) if needed is None or r.entity in needed]
        self._active_set = frozenset(self._active)
        self._group_patterns()
        self.entity_types = sorted({r.entity for r in self.recognizers})
        email_domain_ok("warm-up@example.com")  # tldextract builds its suffix trie on first use (~0.1 s)

    # --- construction ---------------------------------------------------------------------------

    def _build_predefined(self) -> None:
        merged: dict[tuple[Any, ...], _Recognizer] = {}
        for recognizer in presidio_recognizers(self.languages):
            language = recognizer.supported_language
            patterns = tuple((p.regex, p.score) for p in getattr(recognizer, "patterns", None) or ())
            key = (recognizer.name, recognizer.supported_entities[0], patterns)
            known = merged.get(key)
            if known is not None:  # the same recognizer for another language: pool the context words
                words = tuple(w.lower() for w in recognizer.context or ()) + context_words(language, known.entity)
                known.context = tuple(dict.fromkeys(known.context + words))
                known.languages.append(language)
                continue
            built = self._from_presidio(recognizer, language)
            if built is not None:
                merged[key] = built
                self.recognizers.append(built)

    def _from_presidio(self, recognizer: EntityRecognizer, language: str) -> _Recognizer | None:
        entity = recognizer.supported_entities[0]
        words = tuple(w.lower() for w in (recognizer.context or [])) + context_words(language, entity)
        if isinstance(recognizer, PhoneRecognizer):
            return _Recognizer(recognizer.name, entity, "phone", context=words, languages=[language])
        if not isinstance(recognizer, PatternRecognizer):
            logger.warning("recognizer %s is neither pattern- nor phone-based: not covered", recognizer.name)
            return None
        flags = recognizer.global_regex_flags or PRESIDIO_FLAGS
        patterns = [(WindowedPattern.get(p.regex, flags), p.score) for p in recognizer.patterns]
        kind = "iban" if isinstance(recognizer, IbanRecognizer) else "pattern"
        validate = email_domain_ok if isinstance(recognizer, EmailRecognizer) else _overridden(recognizer, "validate_result")
        invalidate = None if kind == "iban" else _overridden(recognizer, "invalidate_result")  # its analyze skips it
        return _Recognizer(recognizer.name, entity, kind, patterns, words, validate, invalidate, languages=[language])

    def _build_custom(self, custom: Sequence[CustomSpec]) -> None:
        deny_lists: list[Sequence[str]] = [() for _ in self.recognizers]
        for spec in custom:
            if not spec.patterns and not spec.deny_list:
                raise ValueError(f"custom recognizer {spec.name!r}: needs patterns or a deny list")
            patterns = []
            for pattern_name, source, score in spec.patterns:
                try:
                    patterns.append((WindowedPattern.get(source, PRESIDIO_FLAGS), float(score)))
                except (re.error, regex.error, ValueError, TypeError, OverflowError) as exc:
                    raise ValueError(f"custom recognizer {spec.name!r}, pattern {pattern_name!r}: {exc}") from None
            context = tuple(word.lower() for word in spec.context)
            self.recognizers.append(
                _Recognizer(spec.name, spec.entity, "pattern", patterns, context, deny_score=float(spec.deny_list_score))
            )
            deny_lists.append(tuple(spec.deny_list))
        self.deny = DenyLists(deny_lists)

    # --- analysis -------------------------------------------------------------------------------

    def _prune_unreachable(self, thresholds: Mapping[str, float], default: float) -> None:
        """Drop predefined patterns whose best possible score is under their entity's threshold: Presidio's
        0.01–0.05 "weak" patterns under a 0.5 threshold. A validator can raise a score to 1.0, so a recognizer
        with one keeps all its patterns. Results at or above the thresholds are unchanged."""
        for recognizer in self.recognizers:
            if recognizer.kind != "pattern" or recognizer.validate is not None:
                continue
            threshold = thresholds.get(recognizer.entity, default)
            recognizer.patterns = [
                (pattern, base)
                for pattern, base in recognizer.patterns
                if (ctx.boost(base) if recognizer.context else base) >= threshold
            ]

    def _group_patterns(self) -> None:
        """Patterns grouped by trigger finder: one empty trigger list skips a whole group."""
        groups: dict[Any, list[tuple[int, WindowedPattern, float]]] = {}
        for index in self._active:
            recognizer = self.recognizers[index]
            for pattern, base in recognizer.patterns:
                groups.setdefault(pattern.finder, []).append((index, pattern, base))
        self._untriggered = groups.pop(None, [])
        self._groups = list(groups.items())
        self._trigger_chars = frozenset(c for finder in groups for c in finder.chars)
        self._trigger_positions = (
            re.compile("[" + "".join(re.escape(c) for c in sorted(self._trigger_chars)) + "]")
            if self._trigger_chars else None
        )
        # A digit run longer than every atom's minimum triggers what the longest minimum triggers.
        self._longest_needed = max((k for finder in groups for k, _ in finder.digits), default=0)
        # Which groups one trigger occurrence sets off depends only on its neighbourhood: a symbol on
        # the characters before and after it (text[p - 1 : p + 2]; a tuple at the text's start), a
        # digit run on (length, character before).
        # Filled on first sight of each neighbourhood; shared by all texts (single dict operations).
        self._groups_at: dict[Any, tuple[int, ...]] = {}
        self._phone_index = next((i for i in self._active if self.recognizers[i].kind == "phone"), None)

    def analyze(self, text: str) -> list[Detection]:
        """Detections in `text`, sorted by position; Presidio's results, less the fixed false positives."""
        if not text:
            return []
        occurrences = Occurrences(text)
        found: dict[int, list[_Result]] = {}
        members = list(self._untriggered)
        # Only the groups the text's trigger characters and digit runs can set off are looked at.
        for number in self._triggered_groups(text, occurrences):
            finder, group = self._groups[number]
            occurrences.found_trigger(finder)
            members.extend(group)
        for index, pattern, base in members:
            matches = pattern.matches(text, occurrences)
            if matches:
                self._score(text, matches, index, base, found.setdefault(index, []))
        if self._phone_index is not None:
            spans = self.phone.find(text, occurrences)
            if spans:
                entity = self.recognizers[self._phone_index].entity
                found[self._phone_index] = [(entity, s, e, 0.4, self._phone_index) for s, e in spans]
        for index, start, end in self.deny.find(text):
            if index in self._active_set:
                recognizer = self.recognizers[index]
                found.setdefault(index, []).append((recognizer.entity, start, end, recognizer.deny_score, index))
        results: list[_Result] = []
        for index, items in found.items():
            # IbanRecognizer.analyze returns its results as found; the others deduplicate.
            single = len(items) == 1 and items[0][3] > 0
            results.extend(items if single or self.recognizers[index].kind == "iban" else remove_duplicates(items))
        if not results:
            return []
        results = self._enhance(text, self._drop_inside_emails(results))
        if len(results) > 1 or results[0][3] <= 0:
            results = remove_duplicates(results)
        results = self._drop_nhs_phones(text, results)
        detections = []
        for entity, start, end, score, index in results:
            if self.entities is not None and entity not in self.entities:
                continue
            if self.allow and fold(text[start:end]) in self.allow:
                continue
            detections.append(Detection(entity, start, end, round(float(score), 4), self.recognizers[index].name))
        detections.sort(key=lambda d: (d.start, -d.end, d.entity))
        return detections

    def _triggered_groups(self, text: str, occurrences: Occurrences) -> list[int]:
        """The groups whose trigger occurs in `text`, in group order."""
        triggered: set[int] = set()
        groups_at = self._groups_at
        if self._trigger_positions is not None:
            # One lookup per distinct neighbourhood, kept as one string (before, symbol, after): far
            # fewer than occurrences ("User:" on every line). Position 0 has no character before it.
            around = {text[m.start() - 1 : m.start() + 2] for m in self._trigger_positions.finditer(text, 1)}
            if text[0] in self._trigger_chars:
                key = ("", text[0], text[1:2])
                found = groups_at.get(key)
                triggered.update(found if found is not None else self._remember(key, self._symbol_groups(*key)))
            for piece in around:
                found = groups_at.get(piece)
                if found is None:
                    found = self._remember(piece, self._symbol_groups(piece[0], piece[1], piece[2:]))
                triggered.update(found)
        if self._longest_needed:
            longest = self._longest_needed
            for key in {(min(end - start, longest), before) for start, end, before in occurrences.digit_runs()}:
                found = groups_at.get(key)
                if found is None:
                    found = self._remember(key, self._digit_groups(*key))
                triggered.update(found)
        return sorted(triggered)

    def _remember(self, key: Any, groups: tuple[int, ...]) -> tuple[int, ...]:
        if len(self._groups_at) > 100_000:  # neighbourhoods are few in practice; stay bounded anyway
            self._groups_at.clear()
        self._groups_at[key] = groups
        return groups

    def _symbol_groups(self, before: str, char: str, after: str) -> tuple[int, ...]:
        return tuple(
            number for number, (finder, _) in enumerate(self._groups)
            if any(char in chars and (precede is None or precede[before]) and (follow is None or follow[after])
                   for chars, precede, follow in finder.symbols)
        )

    def _digit_groups(self, length: int, before: str) -> tuple[int, ...]:
        return tuple(
            number for number, (finder, _) in enumerate(self._groups)
            if any(length >= k and (precede is None or precede[before]) for k, precede in finder.digits)
        )

    def _score(self, text: str, matches: list[Any], index: int, base: float, out: list[_Result]) -> None:
        """Presidio's scoring of one pattern's matches: a validator's verdict replaces the score."""
        recognizer = self.recognizers[index]
        validate, invalidate, entity = recognizer.validate, recognizer.invalidate, recognizer.entity
        if recognizer.kind == "iban":
            self._score_iban(text, matches, recognizer, index, base, out)
            return
        for match in matches:
            start, end = match.span()
            if start == end:
                continue
            score = base
            if validate is not None or invalidate is not None:
                value = text[start:end]
                valid = validate(value) if validate is not None else None
                if valid is not None:
                    score = 1.0 if valid else 0.0
                if invalidate is not None and invalidate(value):
                    score = 0.0
            if score > 0:
                out.append((entity, start, end, score, index))

    @staticmethod
    def _score_iban(text: str, matches: list[Any], recognizer: _Recognizer, index: int, base: float,
                    out: list[_Result]) -> None:
        """IbanRecognizer's analysis: try the whole match, then without its optional trailing groups."""
        for match in matches:
            start = match.start()
            for group in range(len(match.groups()), 0, -1):
                group_end = match.span(group)[1]
                end = group_end if group_end > 0 else match.end()
                if start == end:
                    continue
                valid = recognizer.validate(text[start:end])
                score = base if valid is None else (1.0 if valid else 0.0)
                if score > 0:
                    out.append((recognizer.entity, start, end, score, index))
                    break

    def _enhance(self, text: str, results: list[_Result]) -> list[_Result]:
        words_at: dict[int, set[str]] = {}
        enhanced = []
        for result in results:
            context = self.recognizers[result[4]].context
            if context and result[3] < 1.0:  # a validated match (1.0) cannot rise
                start = result[1]
                words = words_at.get(start)
                if words is None:
                    words = words_at[start] = self.context.surrounding_words(text, start)
                if self.context.supportive(words, context):
                    result = (result[0], result[1], result[2], ctx.boost(result[3]), result[4])
            enhanced.append(result)
        return enhanced

    @staticmethod
    def _drop_inside_emails(results: list[_Result]) -> list[_Result]:
        """Fixed false positive: the URL patterns match parts of e-mail addresses."""
        emails = [(r[1], r[2]) for r in results if r[0] == "EMAIL_ADDRESS"]
        if not emails:
            return results
        return [r for r in results if r[0] not in EMAIL_SHADOWED or not any(s <= r[1] and r[2] <= e for s, e in emails)]

    def _drop_nhs_phones(self, text: str, results: list[_Result]) -> list[_Result]:
        """Fixed false positive: a US/CA phone number passing the NHS mod-11 check, with no NHS words near."""
        kept = []
        for result in results:
            if (result[0] == "UK_NHS" and is_us_phone(text[result[1] : result[2]])
                    and not has_nhs_context(self.context.surrounding_words(text, result[1]))):
                continue
            kept.append(result)
        return kept
