"""bench/leakage.py: its figures are computed from what `privacy-proxy scan` says would leave."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUPA = ROOT.parent / "shared" / "data" / "pupa" / "PUPA_New.csv"

sys.path.insert(0, str(ROOT / "bench"))
import leakage

ROWS = [
    # A name and an e-mail address, both found by the default policy.
    ("Write to Jennifer Martinez at jennifer.martinez@example.com about the invoice.",
     "Jennifer Martinez||jennifer.martinez@example.com"),
    # "EE" stands as a word once and inside "employee" once: only a letter-level redactor could hide it.
    ("I bought a phone from EE and the employee was kind.", "EE"),
    # A unit PUPA already replaced is skipped; with no unit left the query is skipped.
    ("Thanks <PRESIDIO_ANONYMIZED_PERSON>", "<PRESIDIO_ANONYMIZED_PERSON>"),
]


def write_pupa(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["conversation_hash", "predicted_category", "user_query", "pii_units"])
        writer.writeheader()
        for number, (query, units) in enumerate(ROWS):
            writer.writerow({"conversation_hash": f"h{number}", "predicted_category": "test",
                             "user_query": query, "pii_units": units})


def test_scoring_and_oracle(tmp_path: Path) -> None:
    data = tmp_path / "PUPA_New.csv"
    write_pupa(data)
    queries = leakage.load_queries(data, None)
    assert [q["units"] for q in queries] == [["jennifer martinez", "jennifer.martinez@example.com"], ["ee"]]
    oracle = {q["id"]: leakage.oracle_redaction(q) for q in queries}
    assert "Jennifer" not in oracle[queries[0]["id"]] and "employee" in oracle[queries[1]["id"]]
    scored = leakage.score(queries, oracle)
    assert scored["leakage"] == 0.5  # the first query leaks nothing, the second its one unit (inside "employee")
    assert scored["retention"] == 1.0
    half = leakage.score(queries, {queries[0]["id"]: "Write to Jennifer Martinez", queries[1]["id"]: None})
    # First query: one unit of two, and 2 of its 6 other words (write, to; not at, about, the, invoice);
    # second: blocked.
    assert half["leakage"] == round((1 / 2 + 0) / 2, 4)
    assert half["retention"] == round((2 / 6 + 0) / 2, 4)
    assert half["blocked"] == 1


def test_bench_runs_the_scan_command(tmp_path: Path) -> None:
    data = tmp_path / "PUPA_New.csv"
    write_pupa(data)
    out = tmp_path / "leakage.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "leakage.py"), "--data", str(data), "--json", str(out),
         "--policy", "minimal=policies/minimal-disclosure.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows["raw"]["leakage"] == 1.0 and rows["raw"]["retention"] == 1.0
    assert rows["oracle"]["leakage"] == 0.5
    # The name and the address are tokens; "EE" (a known word) and its substring in "employee" stay.
    assert rows["minimal"]["leakage"] == 0.5
    assert rows["minimal"]["outcomes"] == {"decision:forward": 2}


@pytest.mark.skipif(not PUPA.is_file(), reason="PUPA is not in ../shared/data")
def test_bench_on_a_pupa_slice(tmp_path: Path) -> None:
    out = tmp_path / "leakage.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "leakage.py"), "--limit", "40", "--json", str(out),
         "--policy", "minimal=policies/minimal-disclosure.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows["raw"]["leakage"] > 0.9
    assert rows["minimal"]["leakage"] < rows["raw"]["leakage"] / 4
    assert rows["oracle"]["leakage"] <= rows["minimal"]["leakage"]
