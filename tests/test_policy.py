"""Tests for privacy_proxy.policy: the shipped policies, located errors, rule precedence, thresholds,
and `privacy-proxy policy validate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.engine import DEFAULT_RULE_ID, CompiledRules
from privacy_proxy.policy.loader import load_policy, parse_policy
from sanitizers.types import Action, Detection

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


# --- the shipped policies ----------------------------------------------------------------------


def test_default_policy_loads() -> None:
    loaded = load_policy(POLICIES / "default.yaml")
    policy = loaded.policy
    assert policy.name == "default"
    assert len(loaded.sha256) == 64
    rules = CompiledRules.from_policy(policy)
    assert rules.rule_for("CREDIT_CARD") == (Action.BLOCK, "block-financial-and-national-ids")
    assert rules.rule_for("URL")[0] == Action.ALLOW
    assert rules.rule_for("PERSON") == (Action.PSEUDONYMIZE, "pseudonymize-identifiers")
    assert rules.rule_for("SOMETHING_NEW") == (Action.PSEUDONYMIZE, DEFAULT_RULE_ID)
    assert policy.failure_mode == "closed" and policy.content.non_text_parts == "block"


def test_strict_policy_loads() -> None:
    policy = load_policy(POLICIES / "strict.yaml").policy
    assert policy.name == "strict"
    assert policy.transform.pseudonym_style == "surrogate"
    rules = CompiledRules.from_policy(policy)
    assert rules.rule_for("US_DRIVER_LICENSE")[0] == Action.BLOCK
    assert rules.rule_for("IP_ADDRESS") == (Action.HASH, "hash-network-ids")
    assert rules.threshold == pytest.approx(0.35)


# --- located errors ----------------------------------------------------------------------------


def error_of(text: str, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    return str(path), caught.value.message


CASES = {
    "unknown nested key": (
        "name: t\n"
        "detection:\n"
        "  recognizers:\n"
        "    - name: r\n"
        "      entity: X_ID\n"
        "      deny_list: [a]\n"
        "      contxt: [b]\n",
        "7:7: detection.recognizers[0].contxt: unknown field",
    ),
    "unknown top-level key": ("name: t\nrulez: []\n", "2:1: rulez: unknown field"),
    "bad action": (
        "name: t\n"
        "rules:\n"
        "  - {id: r1, entities: [PERSON], action: obliterate}\n",
        "3:34: rules[0].action: Input should be 'allow', 'redact', 'mask', 'pseudonymize', 'hash', 'abstract' or 'block'",
    ),
    "bad entity name": (
        "name: t\n"
        "rules:\n"
        "  - id: r1\n"
        "    entities: [PERSON, person]\n"
        "    action: block\n",
        "4:5: rules[0].entities: 'person' is not an entity name",
    ),
    "invalid regex": (
        "name: t\n"
        "detection:\n"
        "  recognizers:\n"
        "    - name: r\n"
        "      entity: X_ID\n"
        "      patterns:\n"
        "        - {name: p, regex: '(unclosed', score: 0.5}\n",
        "7:21: detection.recognizers[0].patterns[0].regex: invalid regular expression",
    ),
    "duplicate rule ids": (
        "name: t\n"
        "rules:\n"
        "  - {id: r1, entities: [PERSON], action: block}\n"
        "  - {id: r2, entities: [URL], action: allow}\n"
        "  - {id: r1, entities: [EMAIL_ADDRESS], action: allow}\n",
        "2:1: rules: rules[2].id 'r1' is already used by rules[0]",
    ),
    "reserved rule id": (
        "name: t\nrules:\n  - {id: default, entities: [PERSON], action: block}\n",
        "3:6: rules[0].id: 'default' is reserved",
    ),
    "bad threshold": (
        "name: t\ndetection:\n  entity_thresholds: {PERSON: 2}\n",
        "3:3: detection.entity_thresholds: PERSON: entity names are UPPER_CASE and thresholds lie in [0, 1]",
    ),
    "overlap too large": (
        "name: t\ndetection:\n  chunk_chars: 400\n  chunk_overlap: 300\n",
        "4:3: detection.chunk_overlap: must be at most half of chunk_chars",
    ),
    "non-mapping YAML": ("- a\n- b\n", "1:1: a policy is a YAML mapping"),
    "empty file": ("", "1:1: a policy is a YAML mapping"),
    "YAML syntax error": ("name: t\nrules: [a, b\ndetection: {}\n", "3:10: invalid YAML: expected ',' or ']'"),
    "bad indentation": ("name: t\n  bad: indent\n", "2:6: invalid YAML: mapping values are not allowed here"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_errors_name_file_line_column_and_field(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path, message = error_of(text, tmp_path)
    assert message.startswith(f"{path}:{expected}"), message


def test_every_error_is_listed(tmp_path: Path) -> None:
    path, message = error_of("name: 'bad name!'\nserver:\n  port: 99999\nfailure_mode: maybe\n", tmp_path)
    lines = message.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:1:1", "name"],
        [f"{path}:3:3", "server.port"],
        [f"{path}:4:1", "failure_mode"],
    ]


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(latin)


def test_errors_never_echo_the_input_value(tmp_path: Path) -> None:
    _, message = error_of("name: t\nrules:\n  - {id: r1, entities: [PERSON], action: s3cr3t-value}\n", tmp_path)
    assert "s3cr3t" not in message


# --- precedence and thresholds -------------------------------------------------------------------


def rules_of(text: str) -> CompiledRules:
    return CompiledRules.from_policy(parse_policy(text))


def test_first_rule_naming_an_entity_wins() -> None:
    rules = rules_of(
        "name: t\n"
        "rules:\n"
        "  - {id: r1, entities: [PERSON], action: pseudonymize}\n"
        "  - {id: r2, entities: [PERSON, EMAIL_ADDRESS], action: block}\n"
        "  - {id: r3, entities: ['*'], action: redact}\n"
        "  - {id: r4, entities: ['*', URL], action: allow}\n"
        "default_action: mask\n"
    )
    assert rules.rule_for("PERSON") == (Action.PSEUDONYMIZE, "r1")
    assert rules.rule_for("EMAIL_ADDRESS") == (Action.BLOCK, "r2")
    assert rules.rule_for("URL") == (Action.REDACT, "r3")  # r3's "*" named it first
    assert rules.rule_for("IP_ADDRESS") == (Action.REDACT, "r3")


def test_a_wildcard_rule_shadows_the_rules_after_it() -> None:
    rules = rules_of(
        "name: t\n"
        "rules:\n"
        "  - {id: keep-dates, entities: [DATE_TIME], action: allow}\n"
        "  - {id: block-all, entities: ['*'], action: block}\n"
        "  - {id: too-late, entities: [PERSON], action: pseudonymize}\n"
    )
    assert rules.rule_for("DATE_TIME") == (Action.ALLOW, "keep-dates")
    assert rules.rule_for("PERSON") == (Action.BLOCK, "block-all")


def test_default_action_applies_with_rule_id_default() -> None:
    rules = rules_of("name: t\nrules:\n  - {id: r1, entities: [PERSON], action: allow}\ndefault_action: hash\n")
    assert rules.rule_for("PERSON") == (Action.ALLOW, "r1")
    assert rules.rule_for("PHONE_NUMBER") == (Action.HASH, "default")
    assert rules_of("name: t\n").rule_for("PERSON") == (Action.PSEUDONYMIZE, "default")


def test_per_entity_thresholds() -> None:
    rules = rules_of(
        "name: t\n"
        "detection:\n"
        "  score_threshold: 0.5\n"
        "  entity_thresholds: {US_DRIVER_LICENSE: 0.7, PERSON: 0.2}\n"
        "rules:\n"
        "  - {id: r1, entities: [PERSON], action: redact}\n"
    )
    detections = [
        Detection("US_DRIVER_LICENSE", 0, 8, 0.65),
        Detection("US_DRIVER_LICENSE", 10, 18, 0.7),
        Detection("PERSON", 20, 24, 0.3),
        Detection("PHONE_NUMBER", 30, 42, 0.45),
        Detection("PHONE_NUMBER", 50, 62, 0.5),
    ]
    decided = rules.decide(detections)
    assert [(d.detection.start, d.action, d.rule_id) for d in decided] == [
        (10, Action.PSEUDONYMIZE, "default"),
        (20, Action.REDACT, "r1"),
        (50, Action.PSEUDONYMIZE, "default"),
    ]


def test_detector_min_score_is_the_lowest_threshold() -> None:
    from privacy_proxy.runtime import detector_settings

    policy = parse_policy("name: t\ndetection:\n  score_threshold: 0.5\n  entity_thresholds: {PERSON: 0.2, URL: 0.9}\n")
    assert detector_settings(policy).min_score == pytest.approx(0.2)


# --- privacy-proxy policy validate ---------------------------------------------------------------


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privacy_proxy.cli", "policy", "validate", str(path)],
        capture_output=True, text=True, timeout=60, cwd=path.parent,
    )


def test_validate_command_accepts_a_good_policy() -> None:
    done = validate(POLICIES / "default.yaml")
    assert done.returncode == 0, done.stderr
    assert "ok (policy default" in done.stdout


def test_validate_command_reports_the_located_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nrules:\n  - {id: r1, entities: [PERSON], action: obliterate}\n")
    done = validate(path)
    assert done.returncode == 1
    assert f"{path}:3:34: rules[0].action:" in done.stderr
    assert "Traceback" not in done.stderr
