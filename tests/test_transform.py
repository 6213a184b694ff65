"""Tests for sanitizers.pseudonymize (the Transformer) and sanitizers.guard (the leak guard).

Detections are written by hand here, so these tests need no detector: each one says which span a
detector found and what the policy decided, and checks what the Transformer makes of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizers.guard import find_leaks, iter_strings
from sanitizers.pseudonymize import Transformer, TransformOptions, resolve_overlaps, value_pattern
from sanitizers.restore import Restorer
from sanitizers.types import Action, Decision, Detection

SECRET = b"s" * 32
PLACEHOLDER = Transformer(TransformOptions(secret=SECRET))
NO_PROPAGATION = Transformer(TransformOptions(secret=SECRET, propagate=False))
SURROGATE = Transformer(TransformOptions(secret=SECRET, pseudonym_style="surrogate"))


def find(
    text: str,
    value: str,
    entity: str = "PERSON",
    action: Action = Action.PSEUDONYMIZE,
    score: float = 0.9,
    nth: int = 0,
    rule: str = "test-rule",
) -> Decision:
    """A decision for the `nth` occurrence of `value` in `text` (as if a detector had found it)."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(value, start + 1)
    return Decision(Detection(entity, start, start + len(value), score, "test"), action, rule)


def apply(transformer: Transformer, segments: Sequence[tuple[str, Sequence[tuple]]]):
    """segments: (text, [(value, entity?, action?, ...), ...]) per segment, in conversation order."""
    texts = [text for text, _ in segments]
    decisions = [[find(text, *spec) for spec in specs] for text, specs in segments]
    return transformer.apply(texts, decisions)


# --- consistency and numbering ---------------------------------------------------------------


def test_same_value_gets_the_same_token_across_segments_and_case_variants() -> None:
    result = apply(
        NO_PROPAGATION,
        [
            ("I am John Smith.", [("John Smith",)]),
            ("JOHN SMITH wrote back.", [("JOHN SMITH",)]),
            ("Thanks, john   smith, and Ann Lee.", [("john   smith",), ("Ann Lee",)]),
        ],
    )
    assert result.texts == ["I am [PERSON_1].", "[PERSON_1] wrote back.", "Thanks, [PERSON_1], and [PERSON_2]."]
    assert result.mapping.restorable == {"[PERSON_1]": "John Smith", "[PERSON_2]": "Ann Lee"}
    assert result.mapping.protected == {"John Smith", "JOHN SMITH", "john   smith", "Ann Lee"}
    assert result.entity_counts == {"PERSON": 4}
    assert result.actions == {"PERSON": "pseudonymize"} and result.rules == {"PERSON": "test-rule"}


def test_tokens_are_numbered_per_type_in_conversation_order() -> None:
    result = apply(
        PLACEHOLDER,
        [
            ("Mail zed@corp.example, ask Zed Zulu", [("zed@corp.example", "EMAIL_ADDRESS"), ("Zed Zulu",)]),
            ("Then Amy Adams and amy@corp.example", [("Amy Adams",), ("amy@corp.example", "EMAIL_ADDRESS")]),
        ],
    )
    # First appearance decides the number, not the alphabet or the order of the decisions.
    assert result.mapping.restorable == {
        "[EMAIL_ADDRESS_1]": "zed@corp.example",
        "[PERSON_1]": "Zed Zulu",
        "[PERSON_2]": "Amy Adams",
        "[EMAIL_ADDRESS_2]": "amy@corp.example",
    }


def test_numbering_is_stable_when_the_history_grows() -> None:
    turn1 = [
        ("You help with HR letters.", []),
        ("Write to Jane Doe (jane@corp.example) about John Smith.",
         [("Jane Doe",), ("jane@corp.example", "EMAIL_ADDRESS"), ("John Smith",)]),
    ]
    turn2 = turn1 + [
        ("Dear Jane Doe, about John Smith ...", [("Jane Doe",), ("John Smith",)]),
        ("Now cc Ann Lee and John Smith.", [("Ann Lee",), ("John Smith",)]),
    ]
    first, second = apply(PLACEHOLDER, turn1), apply(PLACEHOLDER, turn2)
    assert second.texts[:2] == first.texts
    assert first.mapping.restorable.items() <= second.mapping.restorable.items()
    assert second.mapping.restorable["[PERSON_3]"] == "Ann Lee"
    assert second.texts[2:] == ["Dear [PERSON_1], about [PERSON_2] ...", "Now cc [PERSON_3] and [PERSON_2]."]


@pytest.mark.parametrize("literal", ["[PERSON_1]", "[person_1]", "PERSON_1", "[Person 1]"])
def test_a_placeholder_typed_by_the_user_is_never_reused(literal: str) -> None:
    text = f"Replace {literal} in the template with John Smith."
    result = apply(PLACEHOLDER, [(text, [("John Smith",)])])
    assert result.texts == [f"Replace {literal} in the template with [PERSON_2]."]
    assert result.mapping.restorable == {"[PERSON_2]": "John Smith"}
    # The model echoing the outbound text gives the user's own text back, literal included.
    assert Restorer(result.mapping.restorable).restore(result.texts[0]) == text


def test_placeholder_transform_round_trips_through_the_restorer() -> None:
    segments = [
        ("Hi, I'm Zoë Müller-Lüdenscheidt; write to zoe@corp.example.",
         [("Zoë Müller-Lüdenscheidt",), ("zoe@corp.example", "EMAIL_ADDRESS")]),
        ("Zoë Müller-Lüdenscheidt's manager is O'Brien [PERSON_2].", [("Zoë Müller-Lüdenscheidt",), ("O'Brien",)]),
    ]
    result = apply(PLACEHOLDER, segments)
    restorer = Restorer(result.mapping.restorable)
    assert [restorer.restore(text) for text in result.texts] == [text for text, _ in segments]
    assert all("Zoë" not in text and "O'Brien" not in text for text in result.texts)


# --- actions -----------------------------------------------------------------------------------


def test_redact_gives_the_bare_type_and_nothing_restorable() -> None:
    result = apply(PLACEHOLDER, [("Call John Smith or John Smith's desk.", [("John Smith", "PERSON", Action.REDACT)])])
    assert result.texts == ["Call [PERSON] or [PERSON]'s desk."]
    assert result.mapping.restorable == {}
    assert result.mapping.protected == {"John Smith"}
    assert result.propagated == 1


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("DE89370400440532013000", "******************3000"),
        ("abcdefghi", "*****fghi"),  # 9 alphanumerics: more than twice the kept 4
        ("abcdefgh", "********"),  # 8: too short to show any of it
        ("12-34", "**-**"),
        ("x", "*"),
    ],
)
def test_mask_keeps_the_last_four_alphanumerics_of_long_values_only(value: str, masked: str) -> None:
    result = apply(PLACEHOLDER, [(f"value: {value}.", [(value, "ID", Action.MASK)])])
    assert result.texts == [f"value: {masked}."]
    assert result.mapping.restorable == {}
    assert result.mapping.protected == {value}


def test_mask_settings() -> None:
    transformer = Transformer(TransformOptions(secret=SECRET, mask_char="#", mask_keep_last=2))
    assert transformer.mask("+1 (212) 555-0199") == "+# (###) ###-##99"
    assert transformer.mask("1234") == "####"


def test_hash_is_a_stable_keyed_token_that_is_never_restored() -> None:
    text = "Server of Bob Stone; bob stone again."
    decisions = [[find(text, "Bob Stone", action=Action.HASH), find(text, "bob stone", action=Action.HASH)]]
    one = PLACEHOLDER.apply([text], decisions)
    token = one.texts[0].split()[2].rstrip(";")
    assert re.fullmatch(r"\[PERSON:[0-9a-f]{10}\]", token)
    assert one.texts == [f"Server of {token}; {token} again."]
    assert one.mapping.restorable == {}
    assert one.mapping.protected == {"Bob Stone", "bob stone"}
    # Same secret (another Transformer, another request): the same token. Another secret: another token.
    again = Transformer(TransformOptions(secret=SECRET)).apply([text], decisions)
    other = Transformer(TransformOptions(secret=b"t" * 32)).apply([text], decisions)
    assert again.texts == one.texts
    assert token not in other.texts[0] and re.search(r"\[PERSON:[0-9a-f]{10}\]", other.texts[0])
    assert PLACEHOLDER.keyed_hash("PERSON", "Bob Stone") != PLACEHOLDER.keyed_hash("PERSON", "Bob Stones")


def test_block_decisions_report_the_entity_and_rewrite_nothing() -> None:
    segments = [
        ("I am John Smith", [("John Smith",)]),
        ("SSN 219-09-9999", [("219-09-9999", "US_SSN", Action.BLOCK, 0.85, 0, "block-ids")]),
    ]
    result = apply(PLACEHOLDER, segments)
    assert result.blocked_entities == ["US_SSN"]
    assert result.texts == [text for text, _ in segments]
    assert not result.mapping
    assert result.entity_counts == {"PERSON": 1, "US_SSN": 1}
    assert result.rules["US_SSN"] == "block-ids" and result.actions["US_SSN"] == "block"


def test_allowed_spans_are_left_alone_and_not_protected() -> None:
    text = "On 2024-05-01 John Smith visits https://example.com"
    result = apply(PLACEHOLDER, [(text, [("2024-05-01", "DATE_TIME", Action.ALLOW), ("John Smith",)])])
    assert result.texts == ["On 2024-05-01 [PERSON_1] visits https://example.com"]
    assert result.mapping.protected == {"John Smith"}
    assert [(s, e, d.action) for s, e, d in result.spans[0]] == [(3, 13, Action.ALLOW), (14, 24, Action.PSEUDONYMIZE)]


# --- surrogates --------------------------------------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"\+1-\d{3}-555-\d{4}")


def surrogate_request(transformer: Transformer):
    text = "Mail john.smith@corp.example or call 212-555-0199; I am John Smith, and Jane Doe helps."
    decisions = [
        find(text, "john.smith@corp.example", "EMAIL_ADDRESS"),
        find(text, "212-555-0199", "PHONE_NUMBER"),
        find(text, "John Smith"),
        find(text, "Jane Doe"),
    ]
    return transformer.apply([text], [decisions])


def test_surrogates_keep_the_format_and_restore() -> None:
    result = surrogate_request(SURROGATE)
    by_original = {original: token for token, original in result.mapping.restorable.items()}
    assert set(by_original) == {"john.smith@corp.example", "212-555-0199", "John Smith", "Jane Doe"}
    assert EMAIL.fullmatch(by_original["john.smith@corp.example"])
    assert PHONE.fullmatch(by_original["212-555-0199"])
    assert re.fullmatch(r"[A-Z][\w'.-]*( [A-Z][\w'.-]*)+", by_original["John Smith"])
    for original, token in by_original.items():
        assert token.casefold() != original.casefold()
        assert token in result.texts[0] and original not in result.texts[0]
    assert not find_leaks({"text": result.texts[0]}, result.mapping.protected)


def test_surrogate_round_trip_gives_the_original_text() -> None:
    text = "Mail john.smith@corp.example or call 212-555-0199; I am John Smith, and Jane Doe helps."
    result = surrogate_request(SURROGATE)
    assert Restorer(result.mapping.restorable).restore(result.texts[0]) == text


def test_surrogates_are_stable_for_the_same_secret_only() -> None:
    one = surrogate_request(SURROGATE)
    again = surrogate_request(Transformer(TransformOptions(secret=SECRET, pseudonym_style="surrogate")))
    other = surrogate_request(Transformer(TransformOptions(secret=b"t" * 32, pseudonym_style="surrogate")))
    assert again.mapping.restorable == one.mapping.restorable
    assert set(other.mapping.restorable).isdisjoint(one.mapping.restorable)


def test_surrogates_are_unique_within_a_request() -> None:
    names = [f"Person{i} Example" for i in range(60)]
    text = ", ".join(names)
    result = SURROGATE.apply([text], [[find(text, name) for name in names]])
    assert len(result.mapping.restorable) == 60
    assert sorted(result.mapping.restorable.values()) == sorted(names)


def test_a_surrogate_never_contains_a_protected_value(monkeypatch: pytest.MonkeyPatch) -> None:
    transformer = Transformer(TransformOptions(secret=SECRET, pseudonym_style="surrogate"))
    assert transformer._surrogates is not None
    draws = {0: "Anna Smith", 1: "Bo Lee"}  # the first draw would carry the original surname out
    monkeypatch.setattr(transformer._surrogates, "make", lambda entity, value, attempt: draws.get(attempt, "Cy Li"))
    result = transformer.apply(["Ask Smith."], [[find("Ask Smith.", "Smith")]])
    assert result.texts == ["Ask Bo Lee."]
    assert not find_leaks({"t": result.texts[0]}, result.mapping.protected)


def test_a_surrogate_already_in_the_text_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    transformer = Transformer(TransformOptions(secret=SECRET, pseudonym_style="surrogate"))
    assert transformer._surrogates is not None
    draws = {0: "Bo Lee", 1: "Cy Li"}
    monkeypatch.setattr(transformer._surrogates, "make", lambda entity, value, attempt: draws[attempt])
    text = "Ask Smith, not Bo Lee."
    result = transformer.apply([text], [[find(text, "Smith")]])
    assert result.texts == ["Ask Cy Li, not Bo Lee."]


def test_entities_without_a_surrogate_kind_fall_back_to_placeholders() -> None:
    text = "Badge EMP-123456 of John Smith"
    result = SURROGATE.apply([text], [[find(text, "EMP-123456", "EMPLOYEE_ID"), find(text, "John Smith")]])
    assert result.texts[0].startswith("Badge [EMPLOYEE_ID_1] of ")
    assert result.mapping.restorable["[EMPLOYEE_ID_1]"] == "EMP-123456"


# --- overlaps ----------------------------------------------------------------------------------


def decision(entity: str, start: int, end: int, score: float, action: Action = Action.PSEUDONYMIZE) -> Decision:
    return Decision(Detection(entity, start, end, score), action, "r")


def test_overlap_block_wins_over_a_higher_score() -> None:
    kept = resolve_overlaps([decision("PHONE_NUMBER", 0, 12, 1.0), decision("US_SSN", 2, 11, 0.3, Action.BLOCK)])
    assert [d.detection.entity for d in kept] == ["US_SSN"]


def test_overlap_higher_score_wins_then_longer_span() -> None:
    kept = resolve_overlaps([decision("URL", 5, 14, 0.5), decision("EMAIL_ADDRESS", 0, 14, 1.0)])
    assert [d.detection.entity for d in kept] == ["EMAIL_ADDRESS"]
    kept = resolve_overlaps([decision("A", 0, 4, 0.8), decision("B", 2, 10, 0.8), decision("C", 3, 6, 0.8)])
    assert [d.detection.entity for d in kept] == ["B"]
    kept = resolve_overlaps([decision("SHORT", 0, 4, 0.9), decision("LONG", 0, 10, 0.6)])
    assert [d.detection.entity for d in kept] == ["SHORT"]


def test_overlap_keeps_disjoint_and_adjacent_spans_in_order() -> None:
    kept = resolve_overlaps([decision("B", 5, 9, 0.5), decision("A", 0, 5, 0.9), decision("C", 9, 12, 0.1)])
    assert [(d.detection.entity, d.detection.start) for d in kept] == [("A", 0), ("B", 5), ("C", 9)]


def test_transform_applies_the_overlap_winner() -> None:
    text = "write to ann@corp.example now"
    decisions = [[
        find(text, "corp.example", "URL", Action.ALLOW, 0.5),
        find(text, "ann@corp.example", "EMAIL_ADDRESS", Action.PSEUDONYMIZE, 1.0),
    ]]
    result = PLACEHOLDER.apply([text], decisions)
    assert result.texts == ["write to [EMAIL_ADDRESS_1] now"]
    assert [d.detection.entity for _, _, d in result.spans[0]] == ["EMAIL_ADDRESS"]


# --- propagation -------------------------------------------------------------------------------


def test_propagation_replaces_missed_later_occurrences() -> None:
    segments = [
        ("My name is John Smith.", [("John Smith",)]),
        ("JOHN   SMITH signs; john\nsmith's file; johnsmith stays.", []),
    ]
    result = apply(PLACEHOLDER, segments)
    assert result.texts == [
        "My name is [PERSON_1].",
        "[PERSON_1] signs; [PERSON_1]'s file; johnsmith stays.",
    ]
    assert result.propagated == 2
    assert [d.rule_id for _, _, d in result.spans[1]] == ["propagation", "propagation"]
    assert not find_leaks({"texts": result.texts}, result.mapping.protected)


def test_propagation_is_whole_word_only() -> None:
    text = "Ann wrote the Annual report; ANN signed. Joanne and Annette did not."
    result = apply(PLACEHOLDER, [(text, [("Ann",)])])
    assert result.texts == ["[PERSON_1] wrote the Annual report; [PERSON_1] signed. Joanne and Annette did not."]
    assert result.propagated == 1


def test_propagation_uses_the_first_action_of_the_value() -> None:
    segments = [("Card 4111 1111 1111 1111.", [("4111 1111 1111 1111", "ID", Action.MASK)]), ("again 4111 1111 1111 1111", [])]
    result = apply(PLACEHOLDER, segments)
    assert result.texts == ["Card **** **** **** 1111.", "again **** **** **** 1111"]


def test_propagation_can_be_switched_off() -> None:
    result = apply(NO_PROPAGATION, [("I am John Smith", [("John Smith",)]), ("john smith again", [])])
    assert result.texts == ["I am [PERSON_1]", "john smith again"]
    assert result.propagated == 0
    # ... and then the leak guard is what stops the request.
    assert find_leaks({"messages": [{"content": t} for t in result.texts]}, result.mapping.protected) == [
        "$.messages[1].content"
    ]


# --- leak guard --------------------------------------------------------------------------------


def test_leak_guard_finds_values_anywhere_and_reports_paths_only() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "ask JOHN\n  smith"}]},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"to": "Ann.Lee@corp.example"}'}}
            ]},
        ],
        "metadata": {"tags": ["x", "john smith's"], "n": 5, "ok": None},
        "tools": [{"type": "function", "function": {"name": "g", "description": "Mail John Smith"}}],
    }
    paths = find_leaks(body, {"John Smith", "ann.lee@corp.example"})
    assert paths == [
        "$.messages[1].content[0].text",
        "$.messages[2].tool_calls[0].function.arguments",
        "$.metadata.tags[1]",
        "$.tools[0].function.description",
    ]
    for path in paths:
        assert "john" not in path.casefold() and "ann" not in path.casefold()


def test_leak_guard_is_whole_word_and_ignores_short_values() -> None:
    body = {"a": "Johnny Smithson", "b": "JohnSmith", "c": "a b c"}
    assert find_leaks(body, {"John Smith", "b", ""}) == []
    assert find_leaks({"a": "x"}, set()) == []


def test_leak_guard_skips_role_and_type_values() -> None:
    body = {"messages": [{"role": "Ann Lee", "content": "hi"}], "response_format": {"type": "Ann Lee"}}
    assert find_leaks(body, {"Ann Lee"}) == []
    # Only string values of those keys are skipped; content under a key named "type" is still read.
    assert find_leaks({"type": {"x": "Ann Lee"}}, {"Ann Lee"}) == ["$.type.x"]
    assert dict(iter_strings({"role": "user", "name": "n"})) == {"$.name": "n"}


# --- the trie-shaped value pattern matches like a longest-first alternation -------------------------
_WORDS = st.text(alphabet="abAB.@-1 ", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_WORDS.filter(lambda v: len(v.strip()) >= 2), min_size=1, max_size=8),
       picks=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["", " ", "  x ", "\n", "b1"])), max_size=12))
def test_value_pattern_agrees_with_a_longest_first_alternation(values: list[str], picks: list[tuple[int, str]]) -> None:
    text = "".join(values[i % len(values)] + glue for i, glue in picks)
    kept = sorted({v for v in values if len(v.strip()) >= 2}, key=lambda v: len(v.strip()), reverse=True)
    flat = "|".join(r"\s+".join(re.escape(w) for w in v.split()) for v in kept)
    reference = re.compile(r"(?<!\w)(?:" + flat + r")(?!\w)", re.IGNORECASE)
    pattern = value_pattern(values)
    assert pattern is not None
    assert [m.span() for m in pattern.finditer(text)] == [m.span() for m in reference.finditer(text)]


def test_propagation_covers_case_variants_beyond_casefold() -> None:
    # re's IGNORECASE equates "ı" with "I" although casefold() does not: such a variant is still protected.
    transformer = Transformer(TransformOptions(secret=SECRET))
    result = transformer.apply(["Iris wrote", "then ıris and IRIS"], [[decision("PERSON", 0, 4, 0.9)], []])
    assert result.texts == ["[PERSON_1] wrote", "then [PII] and [PERSON_1]"]


def test_an_allowed_overlap_never_shadows_a_protected_value() -> None:
    # A higher-scoring allowed DATE_TIME over part of a phone number must not let the number through.
    transformer = Transformer(TransformOptions(secret=SECRET))
    text = "reach me at 2023-555-0143 please"
    allowed = decision("DATE_TIME", 12, 21, 0.85, Action.ALLOW)
    phone = decision("PHONE_NUMBER", 12, 25, 0.75)
    result = transformer.apply([text], [[allowed, phone]])
    assert result.texts == ["reach me at [PHONE_NUMBER_1] please"]
    assert "2023-555-0143" in result.mapping.protected
