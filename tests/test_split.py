"""sanitizers.split (task division), sanitizers.segment and the SLM prompts in sanitizers.prompts."""

from __future__ import annotations

import pytest

from privacy_proxy.slm import SLM
from sanitizers import prompts
from sanitizers.segment import clause_spans, sentence_spans
from sanitizers.split import SplitOptions, SplitPlan, Splitter, SubTask, Unit, is_task
from sanitizers.types import Detection, Mapping

HEALTH = ("I was diagnosed with breast cancer last month and start chemotherapy on Monday. "
          "My manager Jane Roe doesn't know yet. "
          "Can you write an email to my team saying I'll be out of office for a few weeks?")


def spans(text: str, *pairs: tuple[str, str]) -> list[Detection]:
    out = []
    for entity, value in pairs:
        start = text.index(value)
        out.append(Detection(entity, start, start + len(value), 0.9))
    return out


@pytest.fixture(scope="module")
def splitter() -> Splitter:
    return Splitter()


# --- segmentation -------------------------------------------------------------------------------


def test_sentences_respect_abbreviations_initials_and_lines() -> None:
    text = "I met Dr. Smith at 3 p.m. today. J. R. Tolkien wrote it! Is it 3.5 km?\n- item one\n- item two"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "I met Dr. Smith at 3 p.m. today.", "J. R. Tolkien wrote it!", "Is it 3.5 km?", "- item one", "- item two"]


def test_clauses_split_context_from_request() -> None:
    text = "I have diabetes, so can you suggest a meal plan; keep it short because I need it today"
    assert [text[a:b] for a, b in clause_spans(text)] == [
        "I have diabetes,", "so can you suggest a meal plan;", "keep it short", "because I need it today"]


@pytest.mark.parametrize(("sentence", "task"), [
    ("Can you write an email to my team?", True), ("Write a cover letter.", True),
    ("Please keep it short.", True), ("How do I reset my router", True), ("Help me plan a trip.", True),
    ("I need you to summarize this.", True), ("- draft a reply", True),
    ("I was diagnosed last month.", False), ("My manager doesn't know yet.", False), ("It rained.", False),
])
def test_is_task(sentence: str, task: bool) -> None:
    assert is_task(sentence) is task


# --- direct mode --------------------------------------------------------------------------------


def test_private_context_stays_and_the_task_leaves(splitter: Splitter) -> None:
    plan = splitter.plan(HEALTH, spans(HEALTH, ("PERSON", "Jane Roe")))
    assert [(u.task, u.sensitive, u.reasons) for u in plan.units] == [
        (False, True, ("topic:health",)), (False, True, ("entity:PERSON",)), (True, False, ())]
    (task,) = plan.subtasks
    assert task.text == "Can you write an email to my team saying I'll be out of office for a few weeks?"
    assert task.units == (2,) and plan.fallback is None and plan.leaks() == []
    outbound = " ".join(plan.outbound()).lower()
    for secret in ("cancer", "chemotherapy", "diagnosed", "jane", "roe"):
        assert secret not in outbound
    assert plan.private_context == [HEALTH[:HEALTH.index(" My manager")], "My manager Jane Roe doesn't know yet."]
    assert task.messages()[0]["role"] == "system" and task.messages()[1] == {"role": "user", "content": task.text}
    summary = plan.summary()
    assert summary == {"mode": "direct", "units": 3, "sensitive_units": 2, "task_units": 1, "subtasks": 1,
                       "fallback": None, "reasons": ["entity:PERSON", "topic:health"]}
    assert "Jane" not in repr(plan) and "cancer" not in repr(plan)


def test_a_mixed_sentence_is_split_into_clauses(splitter: Splitter) -> None:
    plan = splitter.plan("I have diabetes, so can you suggest a meal plan for a week?", [])
    assert plan.outbound() == ["Can you suggest a meal plan for a week?"]
    assert plan.private_context == ["I have diabetes,"]


def test_entity_only_task_leaves_with_the_requests_tokens() -> None:
    text = "Write a letter to Jane Roe and Omar Haddad asking for a meeting."
    earlier = Mapping(restorable={"[PERSON_3]": "Jane Roe"}, protected={"Jane Roe"})
    plan = Splitter().plan(text, spans(text, ("PERSON", "Jane Roe"), ("PERSON", "Omar Haddad")), earlier)
    assert plan.outbound() == ["Write a letter to [PERSON_3] and [PERSON_4] asking for a meeting."]
    assert plan.mapping.restorable == {"[PERSON_3]": "Jane Roe", "[PERSON_4]": "Omar Haddad"}
    answer = "Dear [PERSON_3] and [PERSON_4], could we meet next week?"
    assert plan.compose([answer]) == "Dear Jane Roe and Omar Haddad, could we meet next week?"


def test_entity_context_is_withheld_unless_the_policy_sends_it() -> None:
    text = "My landlord is Omar Haddad. Write a polite note asking him to fix the heating."
    detections = spans(text, ("PERSON", "Omar Haddad"))
    assert Splitter().plan(text, detections).outbound() == ["Write a polite note asking him to fix the heating."]
    sent = Splitter(SplitOptions(context_with_placeholders=True)).plan(text, detections)
    assert sent.outbound() == ["My landlord is [PERSON_1]. Write a polite note asking him to fix the heating."]
    assert sent.leaks() == []


@pytest.mark.parametrize("fallback", ["abstract", "local", "block"])
def test_everything_sensitive_signals_the_fallback(fallback: str) -> None:
    plan = Splitter(SplitOptions(fallback=fallback)).plan(
        "I owe $14,000 on three credit cards. Help me pay off my debt faster.", [])
    assert plan.subtasks == [] and plan.outbound() == [] and plan.fallback == fallback
    assert plan.summary()["subtasks"] == 0


def test_without_a_recognizable_request_the_last_sentence_is_the_task(splitter: Splitter) -> None:
    plan = splitter.plan("I am moving next month. Packing tips for a small flat.", [])
    assert plan.units[-1].task and plan.outbound() == ["I am moving next month. Packing tips for a small flat."]


def test_a_stricter_topic_threshold_lets_more_through() -> None:
    text = "I see a doctor on Fridays. Suggest a relaxing weekend routine."
    assert Splitter(SplitOptions(topic_threshold=0.5)).plan(text, []).outbound() == ["Suggest a relaxing weekend routine."]
    assert Splitter(SplitOptions(topic_threshold=0.9)).plan(text, []).outbound() == [text]


# --- sketch mode and composition ----------------------------------------------------------------


def test_sketch_mode_generalizes_a_sensitive_task() -> None:
    text = "Write a letter to my landlord Omar Haddad explaining that my chemotherapy means I will pay rent late."
    plan = Splitter(SplitOptions(mode="sketch")).plan(text, spans(text, ("PERSON", "Omar Haddad")))
    (task,) = plan.subtasks
    assert task.mode == "sketch" and "[PERSON_1]" in task.text and "[DETAIL_" in task.text
    assert "chemotherapy" not in task.text.lower() and "Omar" not in task.text
    assert "generic draft" in task.messages()[0]["content"]
    assert plan.leaks() == []
    draft = task.text.replace("Write a letter to my landlord", "Dear") + " Sincerely."
    filled = plan.compose([draft])
    assert "Omar Haddad" in filled and "chemotherapy" in filled and "[" not in filled
    messages = plan.composition_messages([draft])
    assert messages[0]["content"] == prompts.FILL_SKETCH_SYSTEM
    assert "Omar Haddad" in messages[1]["content"] and "[PERSON_1]" not in messages[1]["content"]


def test_composition_prompt_carries_the_private_context(splitter: Splitter) -> None:
    plan = splitter.plan(HEALTH, spans(HEALTH, ("PERSON", "Jane Roe")))
    messages = plan.composition_messages(["Subject: Out of office\n\nHi team, I'll be away for a few weeks."])
    assert messages[0]["content"] == prompts.COMPOSE_SYSTEM
    user = messages[1]["content"]
    assert "chemotherapy" in user and "Jane Roe" in user and "Hi team" in user and HEALTH in user


class _ScriptedSLM(SLM):
    """Answers with the private context it was given, to show the prompt reaches the model."""

    backend = "scripted"

    def stream(self, messages, **_):
        context = messages[-1]["content"].split("Private context (never shared):\n")[1].split("\n\n")[0]
        yield "Composed with: "
        yield context


def test_composition_through_an_slm(splitter: Splitter) -> None:
    plan = splitter.plan("I have diabetes, so can you suggest a meal plan for a week?", [])
    final = _ScriptedSLM().generate(plan.composition_messages(["Day 1: oats."]))
    assert final == "Composed with: - I have diabetes,"


def test_leak_check_catches_what_should_not_leave() -> None:
    request = "I have cancer and it is spreading. Write a poem."
    units = [Unit(0, 33, False, True, ("topic:health",)), Unit(34, 47, True, False, ())]
    mapping = Mapping(restorable={"[PERSON_1]": "Jane"}, protected={"Jane"})
    leaky = SplitPlan(request, units, [SubTask("Write a poem for Jane.", (1,))], [request[:33]], mapping)
    assert leaky.leaks() == ["entity"]
    withheld = SplitPlan(request, units, [SubTask("I have cancer and it is spreading. Write a poem.", (1,))],
                         [request[:33]], Mapping())
    assert withheld.leaks() == ["sentence:0"]


# --- prompts ------------------------------------------------------------------------------------


def test_slm_prompt_builders() -> None:
    messages = prompts.minimal_disclosure_messages("Email jane@x.com about my HIV test.", ["an EMAIL_ADDRESS", "health"])
    assert messages[0]["content"] == prompts.MINIMAL_DISCLOSURE_SYSTEM
    assert "jane@x.com" in messages[1]["content"] and "an EMAIL_ADDRESS, health" in messages[1]["content"]
    assert prompts.clean_rewrite('Rewritten request: "Write an email about a medical test."') == \
        "Write an email about a medical test."
    assert prompts.clean_rewrite("```\nPlan a trip.\n```") == "Plan a trip."
    adapted = prompts.repersonalize_messages("Plan my week", "Monday: rest.", {"condition": "diabetes"})
    assert "- condition: diabetes" in adapted[1]["content"] and adapted[0]["content"] == prompts.REPERSONALIZE_SYSTEM
    local = prompts.local_answer_messages([{"role": "user", "content": "hi"}])
    assert local == [{"role": "system", "content": prompts.LOCAL_SYSTEM}, {"role": "user", "content": "hi"}]
    assert prompts.cloud_messages("Do X", "sketch")[0]["content"] == prompts.CLOUD_INSTRUCTIONS["sketch"]
