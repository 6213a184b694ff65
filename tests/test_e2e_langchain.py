"""LangChain's ChatOpenAI through the proxy: chat completions and the Responses API, streamed or not,
tool calls included. (OpenAIEmbeddings is in test_e2e_embeddings.py.)"""

from __future__ import annotations

import json

import pytest
from conftest import ProxyProcess
from fake_upstream import Behaviour, FakeUpstream
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

NAME = "John Smith"
EMAIL = "john.smith@example.com"
PROTECTED = [NAME, EMAIL, "Jane Doe"]
PROMPT = f"Please write to {NAME} at {EMAIL}."


@tool
def send_note(text: str) -> str:
    """Send a note."""
    return "sent"


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_chat_openai_round_trip(proxy: ProxyProcess, fake: FakeUpstream, responses_api: bool, stream: bool) -> None:
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=proxy.base_url, api_key="k", max_retries=0,
                     use_responses_api=responses_api)
    messages = [SystemMessage(f"You help {NAME}."), HumanMessage(PROMPT)]
    if stream:
        text = "".join(chunk.text for chunk in llm.stream(messages))
    else:
        text = llm.invoke(messages).text
    assert text == PROMPT
    assert fake.requests[-1].path == ("/v1/responses" if responses_api else "/v1/chat/completions")
    fake.assert_nothing_leaked(PROTECTED)


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_chat_openai_tool_call_and_history(proxy: ProxyProcess, fake: FakeUpstream, responses_api: bool) -> None:
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=proxy.base_url, api_key="k", max_retries=0,
                     use_responses_api=responses_api).bind_tools([send_note])
    first = llm.invoke([HumanMessage(PROMPT)])
    assert isinstance(first, AIMessage) and first.tool_calls[0]["args"] == {"text": PROMPT}
    # Turn 2 re-sends the tool call and its result; both are scanned, and the answer restored.
    fake.push(Behaviour(answer="Done: [PERSON_1] was notified.", tool_call=False))
    history = [HumanMessage(PROMPT), first,
               ToolMessage(f"note sent to {EMAIL}", tool_call_id=first.tool_calls[0]["id"])]
    second = llm.invoke(history)
    assert second.text == f"Done: {NAME} was notified."
    sent = json.dumps(fake.requests[-1].json)
    assert "[EMAIL_ADDRESS_1]" in sent and "[PERSON_1]" in sent
    fake.assert_nothing_leaked(PROTECTED)
