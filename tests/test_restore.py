"""Tests for sanitizers.restore: tolerant token matching, JSON escaping and streaming."""

from __future__ import annotations

import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sanitizers.restore as restore_mod
from sanitizers.restore import Restorer, StreamRestorer, json_string_escape

MAPPING = {
    "[PERSON_1]": "John Smith",
    "[PERSON_12]": "Zoe Quinn",
    "[EMAIL_ADDRESS_1]": "john@corp.example",
    "[US_SSN_1]": "078-05-1120",
    "[IBAN_CODE_2]": "DE89370400440532013000",
    "Maria Lopez": "Eva Green",
    "Maria": "Eve",
    "Ann Lee": "Bo Li",
    "jane.doe@example.org": "real@corp.example",
    "+1-202-555-0143": "+44 20 7946 0018",
}
R = Restorer(MAPPING)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_stream(stream: StreamRestorer, chunks: list[str]) -> str:
    return "".join(stream.feed(c) for c in chunks) + stream.flush()


# --- placeholders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "[PERSON_1]", "[person_1]", "[Person_1]", "PERSON_1", "person_1", "[PERSON_1", "PERSON_1]",
        "[ PERSON_1 ]", "[PERSON 1]", "[PERSON-1]", "[ person-1 ]", "PERSON 1]", r"\[PERSON\_1\]",
        r"PERSON\_1", "[\tPERSON_1\t]",
    ],
)
def test_placeholder_variants(variant: str) -> None:
    assert R.restore(f"Hi {variant}, bye") == "Hi John Smith, bye"


@pytest.mark.parametrize(
    "variant",
    ["[EMAIL_ADDRESS_1]", "[EMAIL ADDRESS_1]", "[EMAIL-ADDRESS 1]", "[email address 1]",
     "EMAIL_ADDRESS_1", r"\[EMAIL\_ADDRESS\_1\]", "[Email-Address-1]"],
)
def test_multi_word_type_variants(variant: str) -> None:
    assert R.restore(f"mail {variant}.") == "mail john@corp.example."


@pytest.mark.parametrize("text", ["XPERSON_1", "PERSON_1x", "PERSON_1_2", "aPERSON_1]", "SALESPERSON_1"])
def test_bare_form_needs_word_boundaries(text: str) -> None:
    assert R.restore(text) == text


@pytest.mark.parametrize("text", ["person 1", "Ask person 1 first", "email address 1", "PERSON-1"])
def test_prose_with_space_or_hyphen_is_not_a_bare_token(text: str) -> None:
    # Loose separators are accepted only with a bracket on at least one side.
    assert R.restore(text) == text


def test_number_is_never_a_prefix() -> None:
    assert R.restore("PERSON_12 and [PERSON_12] and PERSON_1") == "Zoe Quinn and Zoe Quinn and John Smith"
    only_one = Restorer({"[PERSON_1]": "John Smith"})
    assert only_one.restore("[PERSON_12] PERSON_12 PERSON_1") == "[PERSON_12] PERSON_12 John Smith"


@pytest.mark.parametrize("text", ["[PERSON_7]", "PERSON_7", "[person 7]", "[FOO_1]", "FOO_1", "[PERSON_01]", "[PERSON_]"])
def test_invented_placeholders_stay_as_is(text: str) -> None:
    assert R.restore(f"a {text} b") == f"a {text} b"
    assert run_stream(R.stream(), list(f"a {text} b")) == f"a {text} b"


def test_possessives() -> None:
    assert R.restore("[PERSON_1's] car") == "John Smith's car"
    assert R.restore("[PERSON_1’s] car") == "John Smith’s car"
    assert R.restore("[PERSON_1]'s car") == "John Smith's car"
    assert R.restore("[PERSON_1]’s car") == "John Smith’s car"
    assert R.restore("PERSON_1's car") == "John Smith's car"
    assert R.restore("[PERSON_7's] car") == "[PERSON_7's] car"


def test_adjacent_and_nested_brackets() -> None:
    assert R.restore("[[PERSON_1]]") == "[John Smith]"
    assert R.restore("[PERSON_1][PERSON_12]") == "John SmithZoe Quinn"
    assert R.restore("x[PERSON_1]y") == "xJohn Smithy"
    assert R.restore("(PERSON_1)") == "(John Smith)"


# --- surrogates ------------------------------------------------------------------------------


def test_surrogates_case_and_whitespace() -> None:
    assert R.restore("maria   LOPEZ said") == "Eva Green said"
    assert R.restore("Maria\n\tLopez") == "Eva Green"
    assert R.restore("ann lee") == "Bo Li"
    assert R.restore("JANE.DOE@EXAMPLE.ORG") == "real@corp.example"
    assert R.restore("call +1-202-555-0143.") == "call +44 20 7946 0018."


def test_surrogates_need_word_boundaries() -> None:
    assert R.restore("Joanna Leeds") == "Joanna Leeds"
    assert R.restore("Mariana and Marias") == "Mariana and Marias"
    assert R.restore("x+1-202-555-01439") == "x+1-202-555-01439"


def test_longer_surrogate_wins() -> None:
    assert R.restore("Maria Lopez and Maria") == "Eva Green and Eve"
    assert R.restore("Maria Lo") == "Eve Lo"


def test_overlap_at_different_starts_is_leftmost_first() -> None:
    # Longest wins among surrogates starting at the same place; otherwise the earlier one wins.
    r = Restorer({"Bob Ann": "X", "Ann Lee Smith": "Y", "Lee": "Z"})
    assert r.restore("Bob Ann Lee Smith") == "X Z Smith"
    assert r.restore("Ann Lee Smith") == "Y"


def test_unicode_surrogates() -> None:
    r = Restorer({"José Núñez": "Real Name", "Strauß": "Orig"})
    assert r.restore("JOSÉ  NÚÑEZ!") == "Real Name!"
    assert r.restore("STRAUẞ and strauß") == "Orig and Orig"


# --- JSON ------------------------------------------------------------------------------------


def test_json_string_escape() -> None:
    assert json_string_escape('a"b\\c é\n') == json.dumps('a"b\\c é\n')[1:-1]


@pytest.mark.parametrize("original", ['Jo "Jr" Smith', "back\\slash", "Zoë Ñáñez", "tab\there", "😀 emoji"])
def test_json_escape_yields_valid_json(original: str) -> None:
    r = Restorer({"[PERSON_1]": original, "Maria Lopez": original}, escape=json_string_escape)
    doc = {"to": "[PERSON_1]", "note": "Dear [person 1's] friend, \\[PERSON\\_1\\] and maria lopez\nPERSON_1"}
    raw = json.dumps(doc)
    expected = {"to": original, "note": f"Dear {original}'s friend, {original} and {original}\n{original}"}
    assert json.loads(r.restore(raw)) == expected
    for size in (1, 3, 7):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert json.loads(run_stream(r.stream(), chunks)) == expected


def test_json_mode_matches_escaped_surrogates_and_keeps_backslash_pairs() -> None:
    r = Restorer({"José Núñez": 'Q"x', "[PERSON_1]": "J"}, escape=json_string_escape)
    # Non-ASCII arrives \u-escaped; a markdown backslash arrives doubled and is dropped whole,
    # a doubled backslash before it (two decoded) is kept whole.
    raw = json.dumps({"a": "JOSÉ  Núñez", "b": "\\[PERSON_1]", "c": "\\\\[PERSON_1]"})
    assert json.loads(r.restore(raw)) == {"a": 'Q"x', "b": "J", "c": "\\\\J"}


def test_json_mode_never_starts_inside_an_escape() -> None:
    r = Restorer({"[NRP_1]": "Dutch", "[PERSON_1]": "Jo", 'Bob "B"': "Rob"}, escape=json_string_escape)
    raw = json.dumps("a\nRP_1 b\tNRP_1 c\nPERSON_1 d Bob \"B\" e")[1:-1]
    assert json.loads(f'"{r.restore(raw)}"') == "a\nRP_1 b\tDutch c\nJo d Rob e"


@PROPS
@given(st.lists(st.sampled_from(["[PERSON_1]", "PERSON_1", "\\", '"', "[", "]", "x", " ", "\n",
                                 "é", "\\[PERSON\\_1\\]", "Maria Lopez", "'s", "_"]), max_size=20))
def test_json_mode_output_always_parses(pieces: list[str]) -> None:
    r = Restorer({"[PERSON_1]": 'a"\\b\x01é', "Maria Lopez": "\\"}, escape=json_string_escape)
    raw = json.dumps({"k": "".join(pieces)})
    assert isinstance(json.loads(r.restore(raw)), dict)


# --- streaming -------------------------------------------------------------------------------


def test_plain_text_is_not_held() -> None:
    s = R.stream()
    assert s.feed("Hello there, ") == "Hello there, "
    assert s.feed("how are you? ") == "how are you? "
    assert s.feed("Hello world") == "Hello world"  # "world" cannot start any token
    assert s.flush() == ""


def test_only_a_possible_token_tail_is_held() -> None:
    s = R.stream()
    assert s.feed("Hello Mar") == "Hello "
    assert s.feed("ia Lo") == ""
    assert s.feed("pez, ") == "Eva Green, "
    assert s.feed("see [PERS") == "see "
    assert s.feed("ON_1") == ""
    assert s.feed("] ok") == "John Smith ok"
    assert s.flush() == ""


def test_flush_restores_a_cut_token() -> None:
    for cut, expected in [("[PERSON_1", "John Smith"), ("PERSON_1", "John Smith"), ("[PERSON_1's", "John Smith's"),
                          ("[PERS", "[PERS"), ("Maria Lo", "Eve Lo"), ("[PERSON_7", "[PERSON_7"), ("[", "[")]:
        text = f"end {cut}"
        assert R.restore(text) == f"end {expected}"
        s = R.stream()
        assert s.feed(text) + s.flush() == f"end {expected}"


def test_streams_are_independent() -> None:
    a, b = R.stream(), R.stream()
    assert a.feed("[PERS") == ""
    assert b.feed("Maria L") == ""
    assert b.feed("opez ") == "Eva Green "
    assert a.feed("ON_12]") == "Zoe Quinn"


def test_long_plain_stream_holds_nothing() -> None:
    s = R.stream()
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta,", "eps.", "zeta\n"]
    for _ in range(20_000):
        chunk = rng.choice(words) + " "
        assert s.feed(chunk) == chunk
    assert s.flush() == ""


def test_empty_mapping_is_identity() -> None:
    r = Restorer({})
    assert not r
    assert bool(R)
    assert r.restore("[PERSON_1] Maria") == "[PERSON_1] Maria"
    s = r.stream()
    assert s.feed("[PERS") == "[PERS"
    assert s.flush() == ""


# --- property tests --------------------------------------------------------------------------

TOKEN_PIECES = [
    "[PERSON_1]", "[person_1]", "PERSON_1", "[PERSON_1", "PERSON_1]", "[ PERSON_1 ]", "[PERSON 1]",
    "[PERSON-1]", r"\[PERSON\_1\]", "[PERSON_1's]", "[PERSON_1’s]", "[PERSON_1]'s", "PERSON_12",
    "[PERSON_12]", "[EMAIL ADDRESS_1]", "[EMAIL-ADDRESS 1]", "EMAIL_ADDRESS_1", "[US_SSN_1]",
    "[IBAN_CODE_2]", "[PERSON_7]", "PERSON_7", "[FOO_1]", "person 1", "XPERSON_1", "PERSON_1x",
]
SURROGATE_PIECES = ["Maria Lopez", "maria  lopez", "MARIA\nLopez", "Maria", "Mariana", "Ann Lee", "ann\tlee",
                    "Joanna Leeds", "jane.doe@example.org", "+1-202-555-0143", "Maria Lo", "ſtrauss"]
NOISE_PIECES = ["[", "]", "\\", "_", " ", "  ", "'s", "’s", "\n", "-", "1", "12", "x", "PERS", "[PERS",
                "Mar", "EMAIL ", "\\[", '"', "ẞ", "K", "é"]
pieces = st.one_of(
    st.sampled_from(TOKEN_PIECES),
    st.sampled_from(SURROGATE_PIECES),
    st.sampled_from(NOISE_PIECES),
    st.text(max_size=8),
)
texts = st.lists(pieces, max_size=25).map("".join)


@st.composite
def text_and_chunks(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts)
    if draw(st.booleans()):
        return text, list(text)  # one-char chunks
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=20))))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds, bounds[1:])]


JSON_R = Restorer(MAPPING, escape=json_string_escape)
TINY = Restorer({"[PERSON_1]": "J", "Ann Lee": "B"})


@PROPS
@given(text_and_chunks(), st.sampled_from([R, JSON_R, TINY]))
def test_stream_equals_restore(case: tuple[str, list[str]], restorer: Restorer) -> None:
    text, chunks = case
    assert run_stream(restorer.stream(), chunks) == restorer.restore(text)


@PROPS
@given(text_and_chunks(), st.sampled_from([R, JSON_R]))
def test_prefilter_matches_full_scan(case: tuple[str, list[str]], restorer: Restorer) -> None:
    # The needle prefilter (used for long texts) must find exactly what a full regex scan finds.
    text, chunks = case
    saved = restore_mod._SCAN_MIN
    try:
        restore_mod._SCAN_MIN = 0
        prefiltered, streamed = restorer.restore(text), run_stream(restorer.stream(), chunks)
        restore_mod._SCAN_MIN = 10**9
        scanned = restorer.restore(text)
    finally:
        restore_mod._SCAN_MIN = saved
    assert prefiltered == scanned == streamed


_word = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
_keys = st.one_of(
    st.lists(_word, min_size=1, max_size=3).map(" ".join),  # odd surrogates: regex specials, any script
    st.tuples(st.sampled_from(["PERSON", "EMAIL_ADDRESS", "A", "NRP", "X1_Y"]), st.integers(1, 13)).map(
        lambda t: f"[{t[0]}_{t[1]}]"
    ),
)


@PROPS
@given(st.dictionaries(_keys, st.text(max_size=5), min_size=1, max_size=6), st.booleans(), st.data())
def test_stream_equals_restore_for_random_mappings(mapping: dict[str, str], in_json: bool, data: st.DataObject) -> None:
    r = Restorer(mapping, escape=json_string_escape if in_json else None)
    keys = list(mapping)
    piece = st.one_of(
        st.sampled_from(keys),
        st.sampled_from(keys).map(str.upper),
        st.sampled_from(keys).map(lambda k: k[: max(1, len(k) // 2)]),
        st.sampled_from(NOISE_PIECES + TOKEN_PIECES),
        st.text(max_size=6),
    )
    text = "".join(data.draw(st.lists(piece, max_size=15)))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=15))))
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    expected = r.restore(text)
    assert run_stream(r.stream(), chunks) == expected
    assert run_stream(r.stream(), list(text)) == expected
    if in_json:
        raw = json.dumps(text)[1:-1]  # what sits between the quotes stays a valid JSON string
        json.loads(f'"{r.restore(raw)}"')


# --- size ------------------------------------------------------------------------------------


def _big_case() -> tuple[Restorer, str, int]:
    rng = random.Random(1)
    mapping = {f"[{rng.choice(['PERSON', 'EMAIL_ADDRESS', 'PHONE_NUMBER', 'LOCATION', 'US_SSN'])}_{i}]": f"orig{i}"
               for i in range(1, 26)}
    mapping.update({f"Given{i} Family{i}": f"name{i}" for i in range(25)})
    tokens = list(mapping)
    words = "the quick brown fox jumps over a lazy dog while people discuss plans".split()
    parts, hits = [], 0
    while sum(map(len, parts)) < 32_000:
        if rng.random() < 0.02:
            parts.append(rng.choice(tokens))
            hits += 1
        else:
            parts.append(rng.choice(words))
    return Restorer(mapping), " ".join(parts), hits


def test_large_text_restore_and_stream() -> None:
    r, text, hits = _big_case()
    t0 = time.perf_counter()
    out = r.restore(text)
    elapsed = time.perf_counter() - t0
    assert out.count("orig") + out.count("name") == hits
    print(f"\nrestore of {len(text)} chars with {hits} tokens: {elapsed * 1e3:.2f} ms")  # timing only
    big = text * 3
    chunks = [big[i : i + 5] for i in range(0, len(big), 5)]
    assert run_stream(r.stream(), chunks) == r.restore(big)
