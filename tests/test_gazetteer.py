"""Tests for the name/NRP gazetteers and the language guesser: offline word lists, cue phrases, precision guards."""

from __future__ import annotations

import pytest

from sanitizers.language import guess_language
from sanitizers.ner.gazetteer import NameGazetteer


@pytest.fixture(scope="module")
def gazetteer() -> NameGazetteer:
    return NameGazetteer()


def found(gazetteer: NameGazetteer, text: str) -> list[tuple[str, str]]:
    return [(span.label, text[span.start : span.end]) for span in gazetteer.predict(text)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My name is Rubija", "Rubija"),
        ("my name is jenny smith and I need help", "jenny smith"),
        ("Dear Ms. Okonkwo-Adeyemi, thank you", "Okonkwo-Adeyemi"),
        ("Hi Priyanka, can you check this?", "Priyanka"),
        ("Kind regards,\nTobias Lindqvist", "Tobias Lindqvist"),
        ("I'm Jenny from accounts", "Jenny"),
        ("Mr. Grant called twice", "Grant"),
    ],
)
def test_cue_phrases_name_the_following_words(gazetteer: NameGazetteer, text: str, name: str) -> None:
    assert ("PERSON", name) in found(gazetteer, text)


def test_known_first_name_with_surname_and_initial(gazetteer: NameGazetteer) -> None:
    text = "Krisztián Szöllösy liked the verses from Faina D. Yefremova's Cautionary Tales."
    persons = [value for label, value in found(gazetteer, text) if label == "PERSON"]
    # The possessive is not part of the name, and the run stops there.
    assert persons == ["Krisztián Szöllösy", "Faina D. Yefremova"]


@pytest.mark.parametrize(
    "text",
    [
        "Dear Sir, I will be travelling to Canada",
        "Hi team, will you join? I'm happy to help.",
        "The Red Cross and the best Italian restaurant",
        "Will you mark the date? May I ask?",
        "Call 212-555-0100 or mail JOHN@EXAMPLE.COM",
    ],
)
def test_no_person_in_ordinary_text(gazetteer: NameGazetteer, text: str) -> None:
    assert [value for label, value in found(gazetteer, text) if label == "PERSON"] == []


def test_a_common_word_name_needs_a_surname(gazetteer: NameGazetteer) -> None:
    assert ("PERSON", "Will Smith") in found(gazetteer, "Yesterday Will Smith arrived.")
    assert found(gazetteer, "Yesterday Will arrived.") == []


def test_nrp_words_and_phrases(gazetteer: NameGazetteer) -> None:
    text = "Sri Lankans, Social Democrats, cambodian saudis and a conservative estimate by Muslim groups"
    groups = [value for label, value in found(gazetteer, text) if label == "NRP"]
    assert "Sri Lankans" in groups and "Social Democrats" in groups and "Democrats" not in groups
    assert {"cambodian", "saudis", "Muslim"} <= set(groups)
    # "Muslim" is a first name in some locales, but a group word is never taken as a name.
    assert ("PERSON", "Muslim") not in found(gazetteer, text)


def test_language_guess_routes_by_stop_words() -> None:
    languages = ("en", "de", "fr", "es")
    assert guess_language("Ich heiße Hans und wohne mit meiner Frau in Berlin.", languages) == "de"
    assert guess_language("Je m'appelle Jean et j'habite à Paris avec ma femme.", languages) == "fr"
    assert guess_language("Me llamo Juan y vivo en Madrid con mi esposa.", languages) == "es"
    assert guess_language("Hello, my name is John and I live in Berlin.", languages) == "en"
    # Too little to tell: the first configured language.
    assert guess_language("ok", ("de", "en")) == "de"
