"""Prompts for the local SLM and the instructions sent with cloud sub-tasks.

Every builder returns OpenAI-style messages (`[{"role", "content"}]`) for `privacy_proxy.slm.SLM.generate`.
Those meant for the *local* model may contain private details (they never leave the machine); the cloud
instructions (`cloud_messages`) contain only the sub-task text they are given.

- `minimal_disclosure_messages`: PAPILLON-style — the local model writes the prompt the cloud should see;
  check its output with `sanitizers.guard`/`AbstractionResult.leaks` before use (rules are the fallback).
- `composition_messages`: compose the final answer from the private context + the cloud's answer.
- `repersonalize_messages`: rewrite a generic cloud answer with the user's own details.
- `fill_sketch_messages`: CoGenesis-style — fill the cloud's generic draft with the private details.
- `local_answer_messages`: answer entirely on the device (`strategy: local`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "CLOUD_INSTRUCTIONS",
    "clean_rewrite",
    "cloud_messages",
    "composition_messages",
    "fill_sketch_messages",
    "local_answer_messages",
    "minimal_disclosure_messages",
    "repersonalize_messages",
]

CLOUD_INSTRUCTIONS = {
    "direct": (
        "Answer the request. Bracketed tokens such as [PERSON_1] stand for details the user keeps private: "
        "keep each token exactly as written wherever it is needed, and do not guess what it stands for."
    ),
    "sketch": (
        "Write a generic draft or outline that fulfils the request. Bracketed tokens such as [DETAIL_1] or "
        "[PERSON_1] stand for private details that will be filled in later on the user's device: use them "
        "verbatim where the detail belongs, and do not guess what they stand for."
    ),
}

MINIMAL_DISCLOSURE_SYSTEM = (
    "You protect the user's privacy. Rewrite the user's request so that an external AI assistant can still "
    "do the task well, but learns as little private information as possible: remove or generalize names, "
    "contact details, exact dates, places, employers, amounts, health, financial, legal and other sensitive "
    "personal facts unless the task cannot be done without them. Keep every instruction and all non-private "
    "content. Output only the rewritten request, nothing else."
)
COMPOSE_SYSTEM = (
    "You write the final answer for the user on their own device. You are given the user's original request, "
    "private context that was not shared with the external assistant, and the external assistant's answer to "
    "the shareable part of the request. Combine them into one answer to the original request: use the private "
    "context where it matters, keep what is useful from the external answer, and do not mention that the "
    "request was split."
)
REPERSONALIZE_SYSTEM = (
    "You adapt an answer to the user on their own device. The answer was written without the user's private "
    "details. Rewrite it so that it fits the user's situation using the private details given, changing as "
    "little as needed. Output only the rewritten answer."
)
FILL_SKETCH_SYSTEM = (
    "You complete a draft on the user's device. The draft was written from a generic version of the request; "
    "fill in the user's private details where they belong, adjust wording so it reads naturally, and output "
    "only the completed text."
)
LOCAL_SYSTEM = "You are a helpful assistant running on the user's own device. Answer the request directly."


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items) or "- (none)"


def cloud_messages(task: str, mode: str = "direct") -> list[dict[str, str]]:
    return [{"role": "system", "content": CLOUD_INSTRUCTIONS[mode]}, {"role": "user", "content": task}]


def minimal_disclosure_messages(text: str, hints: Sequence[str] = ()) -> list[dict[str, str]]:
    """`hints`: value-free notes on what was detected ("a PERSON", "health topic")."""
    note = f"\n\nDetected as private: {', '.join(hints)}." if hints else ""
    return [{"role": "system", "content": MINIMAL_DISCLOSURE_SYSTEM},
            {"role": "user", "content": f"Request to rewrite:\n\"\"\"\n{text}\n\"\"\"{note}"}]


def composition_messages(request: str, private_context: Sequence[str], cloud_answers: Sequence[str]) -> list[dict[str, str]]:
    answers = "\n\n".join(cloud_answers)
    return [{"role": "system", "content": COMPOSE_SYSTEM},
            {"role": "user", "content": (f"Original request:\n{request}\n\nPrivate context (never shared):\n"
                                         f"{_bullets(private_context)}\n\nExternal assistant's answer:\n{answers}\n\n"
                                         "Final answer:")}]


def repersonalize_messages(request: str, answer: str, details: Mapping[str, str] | Sequence[str]) -> list[dict[str, str]]:
    """`details`: the private facts, as "label: value" pairs or plain sentences."""
    lines = [f"{k}: {v}" for k, v in details.items()] if isinstance(details, Mapping) else list(details)
    return [{"role": "system", "content": REPERSONALIZE_SYSTEM},
            {"role": "user", "content": (f"User's request:\n{request}\n\nPrivate details:\n{_bullets(lines)}\n\n"
                                         f"Answer to adapt:\n{answer}\n\nAdapted answer:")}]


def fill_sketch_messages(request: str, draft: str, private_context: Sequence[str]) -> list[dict[str, str]]:
    return [{"role": "system", "content": FILL_SKETCH_SYSTEM},
            {"role": "user", "content": (f"User's request:\n{request}\n\nPrivate details:\n{_bullets(private_context)}"
                                         f"\n\nGeneric draft:\n{draft}\n\nCompleted text:")}]


def local_answer_messages(messages: Sequence[Mapping[str, object]]) -> list[dict[str, str]]:
    """The conversation as the local model should see it: our system line, then the client's messages."""
    out = [{"role": "system", "content": LOCAL_SYSTEM}]
    out.extend({"role": str(m.get("role", "user")), "content": str(m.get("content") or "")} for m in messages)
    return out


def clean_rewrite(output: str) -> str:
    """A model's rewrite without the wrapping it tends to add ("Rewritten request:", quotes, fences)."""
    text = output.strip()
    for prefix in ("rewritten request:", "rewritten prompt:", "rewrite:", "request:", "here is the rewritten request:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):].strip()
    for fence in ('"""', "```", '"', "“"):
        closing = "”" if fence == "“" else fence
        if text.startswith(fence) and text.endswith(closing) and len(text) > len(fence) + len(closing):
            text = text[len(fence):-len(closing)].strip()
    return text
