"""`privacy-proxy scan --engine ray`, --output/--resume (privacy_proxy.scan_batch, scan_ray) on a real local Ray.

One Ray node (2 workers) serves the in-process tests of this module; the command-line tests start their own.
Every Ray process runs under the network guard, and its log must stay empty: nothing leaves loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.loader import LoadedPolicy, parse_policy
from privacy_proxy.runtime import Runtime, derive_secret
from privacy_proxy.scan import scan_batch
from privacy_proxy.scan_batch import (
    Batch,
    CheckpointedOutput,
    InputReader,
    StreamSink,
    run_local,
)

ROOT = Path(__file__).resolve().parent.parent
NETGUARD_DIR = ROOT / "tests" / "netguard"
AUDIT_KEY = "cd" * 32
SECRET = derive_secret(bytes.fromhex(AUDIT_KEY))

POLICY = r"""
name: scan-ray-test
detection:
  ner: none
  gazetteers: false
  score_threshold: 0.5
  recognizers:
    - {name: names, entity: PERSON, deny_list: ["Jane Doe", "Bob Stone", "Ana Lima"]}
    - name: badges
      entity: BADGE_ID
      patterns: [{name: badge, regex: "\\bBDG-\\d{4}\\b", score: 0.9}]
rules:
  - {id: block-cards, entities: [CREDIT_CARD], action: block}
  - {id: people, entities: [PERSON, EMAIL_ADDRESS, BADGE_ID], action: pseudonymize}
default_action: redact
transform: {pseudonym_style: surrogate}
"""


def make_lines(count: int) -> list[str]:
    """Texts, conversations, blocks, blank and broken lines, non-ASCII: every kind of output line."""
    names = ["Jane Doe", "Bob Stone", "Ana Lima"]
    lines = []
    for i in range(count):
        name = names[i % 3]
        kind = i % 10
        if kind == 7:
            lines.append("{not json")
        elif kind == 8:
            lines.append("   ")
        elif kind == 5:
            lines.append(json.dumps([i]))
        elif kind in (2, 9):
            messages = [
                {"role": "system", "content": f"Help {name}."},
                {"role": "user", "content": [{"type": "text", "text": f"I am {name}, mail u{i}@corp.example.com"}]},
                {"role": "assistant", "content": f"Hello {name.lower()}, badge BDG-{1000 + i}"},
            ]
            lines.append(json.dumps({"id": f"m{i}", "messages": messages}))
        elif kind == 3:
            lines.append(json.dumps({"id": i, "text": f"{name} pays with 4111 1111 1111 1111"}))
        else:
            lines.append(json.dumps({"id": i, "text": f"{name} (Zoë) at 10.0.{i % 7}.{i % 250}, badge BDG-{2000 + i}"},
                                    ensure_ascii=False))
    return [line + "\n" for line in lines]


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    loaded = LoadedPolicy(parse_policy(POLICY), Path("policy.yaml"), "0" * 64)
    return Runtime.build(loaded, SECRET)


def local_output(runtime: Runtime, lines: list[str]) -> str:
    return scan_batch(1, lines, runtime)


def guarded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY,
        "PYTHONPATH": os.pathsep.join([*extra.pop("path_first", "").split(os.pathsep), str(NETGUARD_DIR)]).lstrip(os.pathsep),
        "PRIVACY_PROXY_NETGUARD": "1",
        "PRIVACY_PROXY_NETGUARD_LOG": str(tmp_path / "netguard.log"),
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }


def scan_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "privacy_proxy.cli", "scan", *args]


# --- without Ray, and the local engine's checkpoint (no Ray node needed) -----------------------------------------


def test_engine_ray_without_ray_names_the_extra(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text("raise ImportError('No module named ray (hidden by the test)')\n")
    (tmp_path / "policy.yaml").write_text(POLICY)
    done = subprocess.run(scan_command("--policy", "policy.yaml", "--engine", "ray"), input="", capture_output=True,
                          text=True, cwd=tmp_path, env=guarded_env(tmp_path, path_first=str(shim)), timeout=60)
    assert done.returncode == 2
    assert "privacy-proxy[ray]" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


class _Crash(RuntimeError):
    pass


class _CrashAfter:
    """A sink that dies (like a killed process) after `batches` writes."""

    def __init__(self, sink: CheckpointedOutput, batches: int) -> None:
        self.sink, self.left = sink, batches

    def write(self, batch: Batch, text: str) -> None:
        if self.left == 0:
            raise _Crash
        self.left -= 1
        self.sink.write(batch, text)

    def finish(self) -> None:
        self.sink.finish()


def test_local_engine_resumes_after_a_crash_without_loss_or_duplicates(tmp_path: Path, runtime: Runtime) -> None:
    lines = make_lines(120)
    out = tmp_path / "out.jsonl"
    fingerprint = {"policy_sha256": "p", "explain": False}
    sink = CheckpointedOutput(out, fingerprint, resume=False)
    with pytest.raises(_Crash):
        run_local(InputReader(lines, 16), runtime, _CrashAfter(sink, 3))
    sink.close()
    assert json.loads(out.with_name("out.jsonl.progress").read_text())["input_lines"] == 48
    with open(out, "ab") as f:  # a torn write after the checkpoint
        f.write(b'{"id": "half')
    resumed = CheckpointedOutput(out, fingerprint, resume=True)
    reader = InputReader(lines, 16)
    resumed.check_input(reader.skip(resumed.lines_done))
    run_local(reader, runtime, resumed)
    resumed.close()
    assert out.read_text(encoding="utf-8") == local_output(runtime, lines)
    assert json.loads(out.with_name("out.jsonl.progress").read_text())["complete"] is True

    # Another input or another policy is refused, not silently mixed in.
    other = CheckpointedOutput(out, fingerprint, resume=True)
    with pytest.raises(ConfigError, match="differ"):
        other.check_input(InputReader(make_lines(121)[1:], 16).skip(other.lines_done))
    other.close()
    with pytest.raises(ConfigError, match="policy sha256"):
        CheckpointedOutput(out, {**fingerprint, "policy_sha256": "q"}, resume=True)


def test_stdout_and_file_outputs_of_the_local_engine_agree(tmp_path: Path, runtime: Runtime) -> None:
    import io

    lines = make_lines(40)
    buffer = io.StringIO()
    run_local(InputReader(lines, 7), runtime, StreamSink(buffer))
    assert buffer.getvalue() == local_output(runtime, lines)


# --- a real local Ray -------------------------------------------------------------------------------------------


def test_cli_ray_killed_mid_run_then_resume_gives_the_local_output(tmp_path: Path, runtime: Runtime) -> None:
    pytest.importorskip("ray")
    lines = make_lines(240)
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "in.jsonl").write_text("".join(lines), encoding="utf-8")
    out, progress = tmp_path / "out.jsonl", tmp_path / "out.jsonl.progress"
    env = guarded_env(tmp_path)
    args = ["--policy", "policy.yaml", "--engine", "ray", "--workers", "2", "--batch-size", "8", "--output", "out.jsonl"]
    # The first run reads 160 lines from a pipe that stays open, so it is certainly mid-run when killed.
    first = subprocess.Popen(scan_command(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp_path, env=env, start_new_session=True)
    try:
        assert first.stdin is not None
        first.stdin.write("".join(lines[:160]).encode("utf-8"))
        first.stdin.flush()
        deadline = time.monotonic() + 90
        done = 0
        while time.monotonic() < deadline and done < 80:
            time.sleep(0.1)
            try:
                done = json.loads(progress.read_text())["input_lines"]
            except (OSError, ValueError):
                pass
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        assert done >= 80, "the first run wrote no checkpoint in time"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray node it started
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    written = out.read_bytes()
    with open(out, "ab") as f:
        f.write('{"id": "torn", "outbound": ["Zo'.encode())  # a line cut by the crash
    state = json.loads(progress.read_text())
    assert state["complete"] is False and len(written) >= state["output_bytes"]

    second = subprocess.run(scan_command(*args, "--resume", "in.jsonl"), capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=180)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert out.read_text(encoding="utf-8") == local_output(runtime, lines)
    assert json.loads(progress.read_text())["complete"] is True
    assert not (tmp_path / "netguard.log").exists()
    assert "Zoë" not in second.stderr and "Jane" not in second.stderr


@pytest.fixture(scope="module")
def ray_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One private Ray node with 2 workers for the module; its processes run under the network guard."""
    pytest.importorskip("ray")
    from privacy_proxy.scan_ray import ray_session

    log = tmp_path_factory.mktemp("ray") / "netguard.log"
    env = {"PYTHONPATH": str(NETGUARD_DIR), "PRIVACY_PROXY_NETGUARD": "1", "PRIVACY_PROXY_NETGUARD_LOG": str(log)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with ray_session(None, 2):
            yield log
    assert not log.exists(), log.read_text()


def run_on_ray(lines: list[str], sink: object, batch_size: int) -> list[int]:
    from privacy_proxy.scan_ray import run_ray

    order: list[int] = []
    run_ray(InputReader(lines, batch_size), sink,  # type: ignore[arg-type]
            policy_bytes=POLICY.encode(), policy_path="policy.yaml", secret=SECRET, workers=2,
            on_batch=lambda batch: order.append(batch.index))
    return order


def test_ray_output_is_byte_identical_to_the_local_engine(ray_node: Path, runtime: Runtime) -> None:
    import io

    lines = make_lines(300)
    buffer = io.StringIO()
    order = run_on_ray(lines, StreamSink(buffer), batch_size=16)
    assert buffer.getvalue() == local_output(runtime, lines)
    assert order == list(range(19))  # 300 lines in batches of 16, handed on in input order
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert {r["decision"] for r in records} == {"forward", "block"}
    assert any(r["id"] is None and "line 8 is not valid JSON" == r.get("error") for r in records)
    # Surrogates are keyed: the same person gets the same stand-in wherever a worker met them.
    stand_ins = {r["outbound"][0].split(" (")[0] for r in records if r["decision"] == "forward" and "text" not in r
                 and isinstance(r["id"], int) and r["id"] % 3 == 0}
    assert len(stand_ins) == 1 and "Jane Doe" not in stand_ins


def test_ray_keeps_input_order_when_batches_finish_out_of_order(ray_node: Path, runtime: Runtime) -> None:
    import io

    # One heavy batch first (long texts), then light ones: the light ones finish first on the other worker.
    heavy = [json.dumps({"id": f"h{i}", "text": "Bob Stone " * 3000}) + "\n" for i in range(4)]
    lines = heavy + make_lines(60)
    buffer = io.StringIO()
    order = run_on_ray(lines, StreamSink(buffer), batch_size=4)
    assert order == sorted(order)
    assert buffer.getvalue() == local_output(runtime, lines)


def test_ray_engine_resumes_a_checkpointed_file(ray_node: Path, runtime: Runtime, tmp_path: Path) -> None:
    lines = make_lines(100)
    out = tmp_path / "out.jsonl"
    fingerprint = {"policy_sha256": "p", "explain": False}
    sink = CheckpointedOutput(out, fingerprint, resume=False)
    with pytest.raises(_Crash):
        run_on_ray(lines, _CrashAfter(sink, 4), batch_size=8)
    sink.close()
    resumed = CheckpointedOutput(out, fingerprint, resume=True)
    assert resumed.lines_done == 32
    reader = InputReader(lines, 8)
    resumed.check_input(reader.skip(resumed.lines_done))
    from privacy_proxy.scan_ray import run_ray

    run_ray(reader, resumed, policy_bytes=POLICY.encode(), policy_path="policy.yaml", secret=SECRET, workers=2)
    resumed.close()
    assert out.read_text(encoding="utf-8") == local_output(runtime, lines)
