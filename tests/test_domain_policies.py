"""The domain policies (policies/healthcare.yaml, gdpr.yaml, finance.yaml, minimal-disclosure.yaml): they
validate, and each behaves as documented end to end — real proxy process, openai SDK, fake upstream."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest
from conftest import AUDIT_KEY, ROOT, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import FakeUpstream

DOMAIN_POLICIES = ("healthcare", "gdpr", "finance", "minimal-disclosure")


@pytest.mark.parametrize("name", DOMAIN_POLICIES)
def test_policy_validates(name: str) -> None:
    done = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "policy", "validate",
                           str(ROOT / "policies" / f"{name}.yaml")], capture_output=True, text=True,
                          env={"PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY, "PATH": ""}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def shipped(name: str, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    running = start_proxy((ROOT / "policies" / f"{name}.yaml").read_text(), tmp_path_factory.mktemp(name),
                          upstream.base_url)
    yield running
    finish_proxy(running)


def ask(proxy: ProxyProcess, prompt: str, stream: bool = False) -> tuple[str, dict[str, str]]:
    sdk = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": prompt}],
                                                        stream=stream)
    headers = {k.lower(): v for k, v in raw.headers.items()}
    answer = raw.parse()
    if stream:
        return "".join(c.delta.content or "" for chunk in answer for c in chunk.choices), headers
    return answer.choices[0].message.content or "", headers


def sent(fake: FakeUpstream) -> str:
    return "\n".join(m["content"] for r in fake.requests for m in r.json["messages"] if isinstance(m["content"], str))


# --- healthcare: HIPAA Safe Harbor ----------------------------------------------------------------


@pytest.fixture(scope="module")
def healthcare(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    yield from shipped("healthcare", upstream_server, tmp_path_factory)


@pytest.mark.parametrize("stream", [False, True])
def test_healthcare_removes_or_generalizes_safe_harbor_identifiers(healthcare: ProxyProcess, fake: FakeUpstream,
                                                                   stream: bool) -> None:
    prompt = ("Write a referral letter for Maria Lopez, 93 years old, MRN 44821973, seen on March 3, 2024 in "
              "Dayton. Member ID XKJ99213. Phone 937-555-0142, email maria.lopez@example.com.")
    text, headers = ask(healthcare, prompt, stream)
    out = sent(fake)
    for value in ("Maria Lopez", "93", "44821973", "March 3", "Dayton", "XKJ99213", "937-555-0142",
                  "maria.lopez@example.com"):
        assert value not in out
    assert "90 or older" in out and "2024" in out and "Ohio" in out  # ages grouped, dates to the year, the state
    # Tokens come back in the answer; generalizations stay general.
    assert "Maria Lopez" in text and "44821973" in text and "maria.lopez@example.com" in text
    assert "90 or older" in text and headers["x-privacy-proxy-strategy"] == "forward"


def test_healthcare_splits_health_topics(healthcare: ProxyProcess, fake: FakeUpstream) -> None:
    prompt = ("I was diagnosed with type 2 diabetes last year and my A1C is 8.1. My doctor, Dr. Alan Chu, wants "
              "me to lose weight. Can you suggest a simple weekly meal plan?")
    text, headers = ask(healthcare, prompt)
    out = sent(fake)
    assert "diabetes" not in out and "A1C" not in out and "Alan Chu" not in out
    assert "Can you suggest a simple weekly meal plan?" in out
    assert headers["x-privacy-proxy-strategy"] == "split" and headers["x-privacy-proxy-routing-rule"] == "health-topics-split"
    assert text  # the cloud's answer to the task (the fake echoes it)


def test_healthcare_zip_codes_keep_three_digits() -> None:
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import Runtime
    from privacy_proxy.scan import scan_item

    runtime = Runtime.build(load_policy(ROOT / "policies" / "healthcare.yaml"), b"k" * 32)
    out = scan_item({"id": 1, "text": "Please mail the forms; my zip code is 02139."}, runtime)
    assert out["outbound"] == ["Please mail the forms; my zip code is 021XX."]


# --- GDPR: Art. 9 special categories --------------------------------------------------------------


@pytest.fixture(scope="module")
def gdpr(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    yield from shipped("gdpr", upstream_server, tmp_path_factory)


def test_gdpr_splits_special_categories_and_pseudonymizes_identifiers(gdpr: ProxyProcess, fake: FakeUpstream) -> None:
    prompt = ("I am a practising Muslim and my employer schedules meetings during Friday prayers. "
              "Can you draft a polite request to my manager Hans Weber for a schedule change?")
    text, headers = ask(gdpr, prompt)
    out = sent(fake)
    assert "Muslim" not in out and "prayers" not in out and "Hans Weber" not in out
    assert "[PERSON_1]" in out and "Hans Weber" in text
    assert headers["x-privacy-proxy-strategy"] == "split"
    assert headers["x-privacy-proxy-routing-rule"] == "art9-special-categories"


def test_gdpr_keeps_inseparable_special_categories_on_the_device(gdpr: ProxyProcess, fake: FakeUpstream) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ask(gdpr, "I am gay and I am afraid my family will find out.")
    assert caught.value.body["code"] == "local_model_unavailable"
    assert caught.value.response.headers["x-privacy-proxy-fallback"] == "split:nothing_to_send"
    assert fake.requests == []


def test_gdpr_forwards_ordinary_requests_with_tokens(gdpr: ProxyProcess, fake: FakeUpstream) -> None:
    text, headers = ask(gdpr, "Please email anna.schmidt@example.de the meeting notes.")
    assert "anna.schmidt@example.de" not in sent(fake) and "anna.schmidt@example.de" in text
    assert headers["x-privacy-proxy-strategy"] == "forward"


# --- finance: PCI DSS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finance(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    yield from shipped("finance", upstream_server, tmp_path_factory)


@pytest.mark.parametrize("prompt", ["Please charge 4111 1111 1111 1111, exp 12/27.", "The CVV is 123, go ahead."])
def test_finance_blocks_cardholder_data(finance: ProxyProcess, fake: FakeUpstream, prompt: str) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        ask(finance, prompt)
    assert caught.value.body["code"] == "pii_blocked" and caught.value.response.headers["x-should-retry"] == "false"
    assert "4111" not in json.dumps(caught.value.body) and fake.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_finance_pseudonymizes_accounts_and_abstracts_amounts(finance: ProxyProcess, fake: FakeUpstream,
                                                              stream: bool) -> None:
    prompt = ("Write a note: transfer $12,500 from IBAN DE89 3704 0044 0532 0130 00 to account number "
              "998877665544 for Jane Roe.")
    text, _headers = ask(finance, prompt, stream)
    out = sent(fake)
    for value in ("12,500", "DE89 3704 0044 0532 0130 00", "998877665544", "Jane Roe"):
        assert value not in out
    assert "a five-figure sum in dollars" in out and "[IBAN_CODE_1]" in out
    # Account numbers and names come back; the amount stays abstract (nothing restores it).
    assert "DE89 3704 0044 0532 0130 00" in text and "998877665544" in text and "Jane Roe" in text
    assert "a five-figure sum in dollars" in text


# --- minimal-disclosure: high-recall rules --------------------------------------------------------


def test_minimal_disclosure_catches_codes_paths_domains_and_rare_names() -> None:
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import Runtime
    from privacy_proxy.scan import scan_item

    runtime = Runtime.build(load_policy(ROOT / "policies" / "minimal-disclosure.yaml"), b"k" * 32)
    text = ("I worked at Zorvexa Dynamics on ticket C1959239586; logs are in C:\\Users\\qfarid\\logs.txt and the "
            "site is shopzorv.com. Can you summarize my role?")
    out = scan_item({"id": 1, "text": text}, runtime)
    sent_text = out["outbound"][0]
    for value in ("Zorvexa", "C1959239586", "qfarid", "shopzorv.com"):
        assert value not in sent_text
    assert sent_text.endswith("Can you summarize my role?")
