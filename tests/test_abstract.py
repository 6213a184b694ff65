"""sanitizers.abstract: rule-based generalization of detected values, and its leak check."""

from __future__ import annotations

import re
from datetime import date

import pytest

from sanitizers.abstract import AbstractionOptions, AbstractionResult, Abstractor, abstract, find_money
from sanitizers.places import resolve
from sanitizers.types import Detection

TODAY = date(2025, 6, 1)


def spans(text: str, *pairs: tuple[str, str]) -> list[Detection]:
    out = []
    for entity, value in pairs:
        start = text.index(value)
        out.append(Detection(entity, start, start + len(value), 0.9))
    return out


def run(text: str, *pairs: tuple[str, str], **options: object) -> AbstractionResult:
    result = abstract(text, spans(text, *pairs), AbstractionOptions(today=TODAY, **options))  # type: ignore[arg-type]
    assert result.leaks() == []
    for value in (v for _, v in pairs):
        assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", result.text, re.IGNORECASE)
    return result


# --- age ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("I'm 34 and tired.", "34", "I'm in my 30s and tired."),
    ("She is 41 years old.", "41 years old", "She is in her 40s."),
    ("The patient is 92 years old.", "92 years old", "The patient is 90 or older."),
    ("I moved there at age 30.", "30", "I moved there in my 30s."),
    ("A 34-year-old man applied.", "34-year-old", "A thirty-something-year-old man applied."),
    ("My 7-year-old son loves it.", "7-year-old", "My young son loves it."),
    ("Age: 57", "57", "Age: 50s"),
    ("He turned 16 yesterday.", "16", "He turned in his teens yesterday."),
])
def test_age_ranges(text: str, value: str, expected: str) -> None:
    assert run(text, ("AGE", value)).text == expected


def test_age_cap_is_configurable() -> None:
    assert run("She is 86 years old.", ("AGE", "86 years old"), age_cap=85).text == "She is 85 or older."


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("granularity", "value", "expected"), [
    ("month", "March 14, 2026", "I fly March 2026."),
    ("month", "14/03/2026", "I fly March 2026."),
    ("month", "2026-03-14", "I fly March 2026."),
    ("year", "14 March 2026", "I fly 2026."),
    ("month", "March 2026", "I fly 2026."),  # already month-level: one level up
    ("year", "2026", "I fly the 2020s."),  # a bare year: the decade
    ("relative", "March 14, 2023", "I fly about 2 years ago."),
    ("relative", "2025-09-14", "I fly in about 3 months."),
    ("month", "Monday", "I fly on a weekday."),
    ("month", "5:30 pm", "I fly in the evening."),
])
def test_dates(granularity: str, value: str, expected: str) -> None:
    assert run(f"I fly {value}.", ("DATE_TIME", value), date_granularity=granularity).text == expected


def test_on_becomes_in_before_a_month() -> None:
    assert run("Born on 12 March 1985 in Ohio.", ("DATE_TIME", "12 March 1985")).text == "Born in March 1985 in Ohio."


# --- places -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "level", "expected"), [
    ("Berlin", "country", "a city in Germany"),
    ("Berlin", "continent", "a city in Europe"),
    ("Paris, TX", "region", "a city in Texas"),
    ("Paris, TX", "country", "a city in the US"),
    ("12 Main Street, Springfield, IL 62704", "region", "an address in Illinois"),
    ("Saudi Arabia", "country", "a country in Asia"),
    ("Texas", "region", "a state in the US"),
    ("Nowhereville", "country", "a place"),
])
def test_locations(value: str, level: str, expected: str) -> None:
    assert run(f"I live in {value} now.", ("LOCATION", value), location_level=level).text == f"I live in {expected} now."


def test_place_resolution_prefers_the_named_container() -> None:
    assert resolve("Paris").country_code == "FR"
    assert resolve("Paris, Texas").state == "Texas"
    assert resolve("Manchester, England").country == "the UK"
    assert resolve("São Paulo").country == resolve("Sao Paulo").country == "Brazil"


@pytest.mark.parametrize(("value", "expected", "digits"), [
    ("02139", "021XX", 3), ("02139-4307", "021XX", 3), ("03601", "000XX", 3),  # 036: under 20,000 people
    ("SW1A 1AA", "SW1A", 3), ("K1A 0B1", "K1A", 3), ("10115", "a postal code", 0),
])
def test_zip_codes(value: str, expected: str, digits: int) -> None:
    assert run(f"zip code {value}.", ("ZIP_CODE", value), zip_digits=digits).text == f"zip code {expected}."


# --- organizations, people, money, the rest -----------------------------------------------------


def test_organizations_by_kind() -> None:
    text = "A clerk at H&R Technology met the vice-president at the University of Westminster and Chase Bank."
    result = run(text, ("ORGANIZATION", "H&R Technology"), ("ORGANIZATION", "University of Westminster"),
                 ("ORGANIZATION", "Chase Bank"))
    assert result.text == "A clerk at a tech company met the vice-president at a university and a bank."
    assert run("I work for Zorblax.", ("ORGANIZATION", "Zorblax")).text == "I work for an organization."
    assert run("St. Mary's Hospital called.", ("ORGANIZATION", "St. Mary's Hospital")).text == "A hospital called."


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("My manager John Smith wants it today.", "John Smith", "My manager wants it today."),
    ("My manager, John Smith, wants it today.", "John Smith", "My manager wants it today."),
    ("John Smith, my manager, wants it today.", "John Smith", "My manager wants it today."),
    ("I asked my best friend Ana for advice.", "Ana", "I asked my best friend for advice."),
    ("Dr. Patel saw me.", "Patel", "A doctor saw me."),
    ("My name is Jane Roe.", "Jane Roe", "My name is [name]."),
    ("Dear Maria, thanks.", "Maria", "Dear [name], thanks."),
    ("I met Jane Roe at lunch.", "Jane Roe", "I met a person at lunch."),
])
def test_people_become_their_roles(text: str, name: str, expected: str) -> None:
    result = run(text, ("PERSON", name))
    assert result.text == expected
    assert result.items[0].rule.startswith("person_")


def test_later_mentions_keep_the_role_and_several_people_get_letters() -> None:
    result = run("My manager John said John would call.", ("PERSON", "John"))  # the 2nd John: propagation
    assert result.text == "My manager said my manager would call."
    result = run("Alice told Bob that Alice would call Carol.", ("PERSON", "Alice"), ("PERSON", "Bob"), ("PERSON", "Carol"))
    assert result.text == "Person A told person B that person A would call person C."


@pytest.mark.parametrize(("style", "value", "expected"), [
    ("magnitude", "$12,500", "a five-figure sum in dollars"),
    ("magnitude", "€3.2 million", "a seven-figure sum in euros"),
    ("magnitude", "2.5 billion USD", "a sum in the billions of dollars"),
    ("round", "$12,500", "about $10,000"),
    ("round", "87,000 euros", "about €90,000"),
    ("round", "$10,000", "a five-figure sum in dollars"),  # already round: rounding would send it as is
])
def test_money(style: str, value: str, expected: str) -> None:
    text = f"I owe {value} now."
    (money,) = find_money(text)
    assert text[money.start:money.end] == value
    result = abstract(text, [money], AbstractionOptions(money=style))
    assert result.text == f"I owe {expected} now." and result.leaks() == []


def test_find_money_forms() -> None:
    text = "Salary 52k, rent $1,800, savings 4,000 dollars, a 5 minute walk, 2024."
    found = [text[d.start:d.end] for d in find_money(text)]
    assert found == ["52k", "$1,800", "4,000 dollars"]


def test_identifiers_and_unknown_types() -> None:
    text = "Mail jane@example.com or call 212-555-0143, ITIN 912-91-1234, badge B-7781."
    result = run(text, ("EMAIL_ADDRESS", "jane@example.com"), ("PHONE_NUMBER", "212-555-0143"),
                 ("US_ITIN", "912-91-1234"), ("BADGE_ID", "B-7781"))
    assert result.text == "Mail an email address or call a phone number, ITIN a tax ID, badge [REDACTED BADGE_ID]."


# --- engine -------------------------------------------------------------------------------------


def test_overlaps_keep_the_longer_span_and_misses_are_propagated() -> None:
    text = "Jane Roe wrote; later JANE ROE and Roe called."
    detections = [Detection("PERSON", 0, 8, 0.9), Detection("PERSON", 5, 8, 0.95)]
    result = abstract(text, detections)
    assert result.text.startswith("A person wrote; later that person and Roe called.")
    assert [i.start for i in result.items] == [0, 22]  # the second one found by propagation
    assert result.leaks() == []


def test_summary_and_items_hold_no_values() -> None:
    text = "I'm 34, my manager John Smith lives in Berlin."
    result = run(text, ("AGE", "34"), ("PERSON", "John Smith"), ("LOCATION", "Berlin"))
    assert result.summary() == {"AGE": {"age_range": 1}, "PERSON": {"person_role": 1},
                                "LOCATION": {"city_to_country": 1}}
    blob = repr(result.summary()) + repr(result.items)
    for value in ("34", "John", "Berlin"):
        assert value not in blob
    assert result.protected == {"34", "John Smith", "Berlin"}


def test_leak_check_reports_a_value_left_in_the_text() -> None:
    result = AbstractionResult(text="a person from Berlin", protected={"Berlin", "Jane"},
                               _entities={"berlin": "LOCATION", "jane": "PERSON"})
    assert result.leaks() == ["LOCATION"]


def test_options_from_policy_settings() -> None:
    from privacy_proxy.policy.strategy import AbstractionSettings

    options = AbstractionOptions.from_settings(AbstractionSettings(date_granularity="year", zip_digits=2))
    assert options.date_granularity == "year" and options.zip_digits == 2
    result = Abstractor(options).abstract("on 3 May 2024 at 02139", spans("on 3 May 2024 at 02139",
                                                                          ("DATE_TIME", "3 May 2024"), ("ZIP_CODE", "02139")))
    assert result.text == "In 2024 at 02XXX"


def test_a_replacement_never_spells_another_value() -> None:
    text = "I study at University and live in Berlin, the capital of Germany."
    result = run(text, ("ORGANIZATION", "University"), ("LOCATION", "Berlin"), ("LOCATION", "Germany"))
    assert result.text == "I study at an organization and live in a place, the capital of a country in Europe."
    assert result.summary()["LOCATION"] == {"collision": 1, "country_to_continent": 1}


# --- minimal-disclosure rewrite (SLM first, rules as fallback) ----------------------------------

REQUEST = "My manager John Smith in Berlin wants a memo about my 2 sick days. Write it."


def _request_detections() -> list[Detection]:
    return spans(REQUEST, ("PERSON", "John Smith"), ("LOCATION", "Berlin"))


def test_rewrite_uses_the_slm_when_its_output_is_clean() -> None:
    from sanitizers.rewrite import minimal_disclosure

    seen: list[list[dict[str, str]]] = []

    def generate(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return 'Rewritten request: "Write a memo to my manager about two sick days."'

    outcome = minimal_disclosure(REQUEST, _request_detections(), Abstractor(), generate)
    assert outcome.source == "slm" and outcome.fallback is None and not outcome.blocked
    assert outcome.text == "Write a memo to my manager about two sick days."
    assert "John Smith" in seen[0][1]["content"] and "a LOCATION, a PERSON" in seen[0][1]["content"]


@pytest.mark.parametrize(("answer", "fallback"), [
    ("Write a memo for John Smith about sick days.", "leak"),
    ("write a memo for JOHN  SMITH", "leak"),
    ("   ", "empty"),
    ("memo " * 400, "too_long"),
])
def test_rewrite_falls_back_to_the_rules(answer: str, fallback: str) -> None:
    from sanitizers.rewrite import minimal_disclosure

    outcome = minimal_disclosure(REQUEST, _request_detections(), Abstractor(), lambda _: answer)
    assert outcome.source == "rules" and outcome.fallback == fallback
    assert outcome.text == "My manager in a city in Germany wants a memo about my 2 sick days. Write it."


def test_rewrite_falls_back_on_slm_faults() -> None:
    from privacy_proxy.slm import NoSLM, SLMTimeout
    from sanitizers.rewrite import aminimal_disclosure, minimal_disclosure

    def timeout(_):
        raise SLMTimeout("the local SLM did not finish within the timeout")

    assert minimal_disclosure(REQUEST, _request_detections(), Abstractor(), timeout).fallback == "slm_timeout"
    assert minimal_disclosure(REQUEST, _request_detections(), Abstractor(), NoSLM().generate).fallback == "slm_unavailable"
    assert minimal_disclosure(REQUEST, _request_detections(), Abstractor()).fallback == "no_slm"

    import asyncio

    outcome = asyncio.run(aminimal_disclosure(REQUEST, _request_detections(), Abstractor(), NoSLM().agenerate))
    assert outcome.source == "rules" and outcome.fallback == "slm_unavailable"

    async def fine(_):
        return "Write a memo about sick days."

    assert asyncio.run(aminimal_disclosure(REQUEST, _request_detections(), Abstractor(), fine)).source == "slm"


def test_rewrite_blocks_when_the_rules_cannot_hide_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import sanitizers.abstract as abstract_module
    from sanitizers.rewrite import minimal_disclosure

    monkeypatch.setattr(abstract_module, "_avoid_collisions", lambda edits: None)
    monkeypatch.setitem(abstract_module.GENERIC, "BADGE_ID", "badge B-7781 withheld")  # a broken rule
    text = "Badge B-7781 lost."
    outcome = minimal_disclosure(text, spans(text, ("BADGE_ID", "B-7781")), Abstractor(), lambda _: "B-7781")
    assert outcome.blocked and outcome.source == "none" and outcome.fallback == "leak"
    assert outcome.abstraction is not None and outcome.abstraction.leaks() == ["BADGE_ID"]
