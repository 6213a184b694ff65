"""Load: many concurrent chat requests through a real proxy, each carrying its own private values.

Starts the tests' fake upstream (its own process, streaming the echo in small pieces with a delay
between them) and `privacy-proxy serve` (a test-like policy: `ner: none`, a deny list holding one
generated name per request, emails/phones/EMP-###### ids by pattern) on loopback, then fires
`--requests` chat requests, `--concurrency` at a time (default: all at once), from httpx.AsyncClients.
Request *i* has its own name, email, phone and employee id, and the fake echoes its prompt back, so the
exact answer is known. `--rounds N` repeats the load against the same proxy with new values.

Checked and reported:
  - outcome of every request: `ok` (200, answer exactly its own prompt), failed cleanly (`http_error`: an
    OpenAI-shaped error body; `stream_error`: a `data: {"error": ...}` event), or not clean
    (`transport_error`, `incomplete`, `wrong_answer`, `mixed`: another request's value in the answer);
  - the upstream never saw a raw value (every body the fake recorded, against every value of every request);
  - the proxy's RSS (`/proc/<pid>/status` VmRSS, sampled every 50 ms): before, peak, after; its
    connections to the upstream (from `/proc/net/tcp`): peak, and still held afterwards;
  - throughput, latency p50/p95/p99, time to first byte for streams; CPU seconds of proxy, client, fake;
  - afterwards: `/healthz`, and whether one more streamed request still gets its answer.

Exits 1 only if an invariant broke (a request mixed, failed uncleanly, or a raw value reached the
upstream); clean failures are figures, not errors.

    .venv/bin/python bench/load.py [--requests 1000] [--concurrency 1000] [--stream/--no-stream]
                                   [--rounds 1] [--chunk-delay 0.01] [--label NAME] [--keep DIR]
                                   [--json bench/results/load.json]

The JSON file keeps one entry per label (default `stream` / `no_stream`), so runs add up.
tests/test_load.py imports the client and checks from here and drives them against its own proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import httpx

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

# --- who sends what ---------------------------------------------------------------------------------

FIRST_NAMES = (
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
    "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Soren", "Talia", "Umar", "Vera", "Wim", "Xenia",
)
# Surnames are fixed-length strings of 3-letter syllables (one syllable per base-16 digit of the index):
# unique, and none is a prefix or infix of another, so "another request's name" is never a false hit.
SYLLABLES = ("bar", "cel", "dov", "fen", "gal", "hum", "jor", "kes", "lin", "mav", "nor", "pel", "ruk", "sav", "tol", "vim")
TOKEN_RE = re.compile(r"\[(?:PERSON|EMAIL_ADDRESS|EMPLOYEE_ID|PHONE_NUMBER)_\d+\]", re.IGNORECASE)
CLEAN = ("ok", "http_error", "stream_error")
NOT_CLEAN = ("transport_error", "incomplete", "wrong_answer", "mixed")


@dataclass(frozen=True)
class Persona:
    """The private values of one request, and the prompt that carries them."""

    index: int
    name: str
    email: str
    phone: str
    employee: str

    @property
    def values(self) -> tuple[str, str, str, str]:
        return (self.name, self.email, self.phone, self.employee)

    @property
    def prompt(self) -> str:
        return (f"Hi, I am {self.name} ({self.employee}). Please write to {self.email} or call {self.phone} "
                f"about my badge. Thanks, {self.name}!")


def personas(count: int, tag: str | None = None) -> list[Persona]:
    """`count` personas with values unique to each (and to this run: `tag` goes into the emails)."""
    tag = tag or secrets.token_hex(3)
    digits = 3 if count <= 16**3 else len(f"{count - 1:x}")
    out = []
    for i in range(count):
        surname = "".join(SYLLABLES[int(d, 16)] for d in f"{i:0{digits}x}").capitalize()
        out.append(Persona(
            index=i,
            name=f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {surname}",
            email=f"load{i}.{tag}@example.com",
            phone=f"(646) {200 + i // 10000}-{i % 10000:04d}",  # valid NANP numbers, one per request
            employee=f"EMP-{i:06d}",
        ))
    return out


def policy_text(people: Sequence[Persona]) -> str:
    """A test-like policy: no NER, the personas' names as a deny list, ids by pattern; the default
    policy's connect and pool timeouts (5 s each)."""
    names = json.dumps([p.name for p in people])
    return f"""
name: load
upstream: {{base_url: "http://127.0.0.1:1/v1", timeouts: {{connect: 5, read: 60, write: 30, pool: 5}}}}
detection:
  ner: none
  entity_thresholds: {{PHONE_NUMBER: 0.4}}
  recognizers:
    - name: load_names
      entity: PERSON
      deny_list: {names}
    - name: employee_ids
      entity: EMPLOYEE_ID
      patterns: [{{name: emp, regex: "\\\\bEMP-\\\\d{{6}}\\\\b", score: 0.9}}]
rules:
  - {{id: block-financial, entities: [CREDIT_CARD, IBAN_CODE, US_SSN], action: block}}
  - {{id: pseudonymize-ids, entities: [PERSON, EMAIL_ADDRESS, PHONE_NUMBER, EMPLOYEE_ID], action: pseudonymize}}
default_action: pseudonymize
"""


class ValueIndex:
    """Every private value of a run → whose it is; finds them in any text in one pass (case-insensitive)."""

    def __init__(self, people: Iterable[Persona]) -> None:
        self._automaton = ahocorasick.Automaton()
        for person in people:
            for value in person.values:
                self._automaton.add_word(value.casefold(), (person.index, value))
        self._automaton.make_automaton()

    def owners(self, text: str) -> set[int]:
        return {owner for _, (owner, _) in self._automaton.iter(text.casefold())}


# --- the client side --------------------------------------------------------------------------------


@dataclass
class Outcome:
    index: int
    stream: bool
    kind: str  # one of CLEAN or NOT_CLEAN
    status: int | None = None
    detail: str = ""  # an error code or what went wrong (never a value)
    latency: float = 0.0  # seconds, request sent → body read
    ttfb: float | None = None  # seconds to the first body bytes (streams)


def _judge(person: Persona, text: str, values: ValueIndex) -> tuple[str, str] | None:
    """What is wrong with an answer's text, if anything: ("mixed", …) or ("wrong_answer", …)."""
    foreign = values.owners(text) - {person.index}
    if foreign:
        return "mixed", f"{len(foreign)} other request(s)' values"
    if TOKEN_RE.search(text):
        return "wrong_answer", "token left in the answer"
    if text != person.prompt:
        return "wrong_answer", "answer differs from the prompt"
    return None


def _clean_error(body: Any) -> str | None:
    """The error code if `body` is the OpenAI error shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error:
        return str(error.get("code") or error.get("type"))
    return None


async def one_request(client: httpx.AsyncClient, base_url: str, person: Persona, stream: bool,
                      values: ValueIndex) -> Outcome:
    payload = {"model": "load-test", "stream": stream, "messages": [{"role": "user", "content": person.prompt}]}
    outcome = Outcome(person.index, stream, "incomplete")
    start = time.perf_counter()
    try:
        async with client.stream("POST", f"{base_url}/chat/completions", json=payload) as response:
            outcome.status = response.status_code
            if response.status_code != 200 or not stream:
                raw = await response.aread()
                outcome.latency = time.perf_counter() - start
                try:
                    body = json.loads(raw)
                except ValueError:
                    outcome.detail = "body is not JSON"
                    return outcome
                if response.status_code != 200:
                    if values.owners(raw.decode("utf-8", "replace")):  # errors never quote a value
                        outcome.kind, outcome.detail = "wrong_answer", f"{response.status_code} error quotes a value"
                        return outcome
                    code = _clean_error(body)
                    outcome.kind, outcome.detail = ("http_error", f"{response.status_code} {code}") if code else \
                        ("incomplete", f"{response.status_code} without an OpenAI error body")
                    return outcome
                try:
                    text = body["choices"][0]["message"]["content"] or ""
                    finish = body["choices"][0]["finish_reason"]
                except (KeyError, IndexError, TypeError):
                    outcome.detail = "200 without choices[0].message"
                    return outcome
                wrong = _judge(person, text, values)
                outcome.kind, outcome.detail = wrong or (("ok", "") if finish == "stop" else ("incomplete", f"finish {finish}"))
                return outcome
            text, finish, done, error, buffer = "", None, False, None, b""
            async for chunk in response.aiter_raw():
                if outcome.ttfb is None:
                    outcome.ttfb = time.perf_counter() - start
                buffer += chunk.replace(b"\r\n", b"\n")  # (a CR split from its LF is not expected here)
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            done = True
                            continue
                        event_body = json.loads(data)
                        if not isinstance(event_body, dict):
                            outcome.latency = time.perf_counter() - start
                            outcome.detail = "stream event is not a JSON object"
                            return outcome
                        if "error" in event_body:
                            error = _clean_error(event_body) or "error event without the OpenAI shape"
                            continue
                        for choice in event_body.get("choices") or []:
                            if choice.get("index") == 0:
                                text += (choice.get("delta") or {}).get("content") or ""
                                finish = choice.get("finish_reason") or finish
            outcome.latency = time.perf_counter() - start
            if error is not None:
                wrong = _judge(person, text, values) if values.owners(text) - {person.index} else None
                outcome.kind, outcome.detail = wrong or ("stream_error", error)
                return outcome
            if not done or finish is None:
                outcome.detail = "stream ended without finish_reason/[DONE] and without an error event"
                return outcome
            wrong = _judge(person, text, values)
            outcome.kind, outcome.detail = wrong or (("ok", "") if finish == "stop" else ("incomplete", f"finish {finish}"))
            return outcome
    except httpx.HTTPError as exc:
        outcome.latency = time.perf_counter() - start
        outcome.kind, outcome.detail = "transport_error", type(exc).__name__
        return outcome
    except ValueError:  # a data line that is not JSON
        outcome.latency = time.perf_counter() - start
        outcome.detail = "stream event is not JSON"
        return outcome


# httpcore's pool does O(connections x queued requests) work on every request it adds or releases
# (encode/httpcore#1035): one client holding 1,000 connections spends more CPU in that bookkeeping than
# on the requests, and the load generator would measure itself. So the load is spread over many small
# clients, each with a pool that never queues.
CONNECTIONS_PER_CLIENT = 16


def client_for(timeout: float = 120.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=30.0, pool=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=CONNECTIONS_PER_CLIENT),
        trust_env=False,
    )


async def fire(base_url: str, jobs: Sequence[tuple[Persona, bool]], concurrency: int,
               values: ValueIndex) -> tuple[list[Outcome], float]:
    """Send every (persona, stream) job, at most `concurrency` at a time; outcomes and wall seconds."""
    gate = asyncio.Semaphore(concurrency)
    clients = [client_for() for _ in range(-(-min(concurrency, len(jobs)) // CONNECTIONS_PER_CLIENT) or 1)]

    async def run(k: int, person: Persona, stream: bool) -> Outcome:
        async with gate:
            return await one_request(clients[k % len(clients)], base_url, person, stream, values)

    try:
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(run(k, p, s) for k, (p, s) in enumerate(jobs)))
        return list(outcomes), time.perf_counter() - start
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def upstream_leaks(bodies: Iterable[bytes], values: ValueIndex) -> tuple[int, int, int]:
    """(bodies seen, bodies holding any raw value of any request, chat bodies without the expected tokens)."""
    seen = leaked = untokenized = 0
    for body in bodies:
        seen += 1
        text = body.decode("utf-8", "replace")
        try:
            decoded = json.dumps(json.loads(body), ensure_ascii=False)
        except ValueError:
            decoded = ""
        if values.owners(text) or values.owners(decoded):
            leaked += 1
        if not all(token in decoded for token in ("[PERSON_1]", "[EMAIL_ADDRESS_1]", "[PHONE_NUMBER_1]", "[EMPLOYEE_ID_1]")):
            untokenized += 1
    return seen, leaked, untokenized


# --- the proxy process ------------------------------------------------------------------------------


def rss_kib(pid: int, field_name: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ESTABLISHED, CLOSE_WAIT = "01", "08"


def connections_to(port: int, states: tuple[str, ...] = (ESTABLISHED,)) -> int:
    """TCP sockets (IPv4) in `states` whose remote end is `port`: with the fake upstream on its own port
    and one proxy, the proxy's upstream connections. CLOSE_WAIT: the upstream closed, the proxy did not."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    suffix = f":{port:04X}"
    return sum(1 for row in rows if (cols := row.split()) and cols[2].endswith(suffix) and cols[3] in states)


@dataclass
class Sampler:
    """Samples the proxy's RSS (and, given the upstream port, its upstream connections) in the background."""

    pid: int
    upstream_port: int | None = None
    interval: float = 0.05
    rss: list[int] = field(default_factory=list)  # KiB
    upstream_connections: list[int] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def _loop(self) -> None:
        tick = 0
        while True:
            value = rss_kib(self.pid)
            if value is not None:
                self.rss.append(value)
            if self.upstream_port is not None and tick % 2 == 0:
                self.upstream_connections.append(connections_to(self.upstream_port))
            tick += 1
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (processes started afterwards inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(origin: str, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{origin}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{origin} did not become healthy:\n{log.read_text(errors='replace')[-4000:]}")


def start_proxy(policy: str, workdir: Path, upstream: str, log_level: str = "info") -> tuple[subprocess.Popen, str]:
    """`privacy-proxy serve` on a free loopback port; returns the process and its base URL (…/v1)."""
    (workdir / "policy.yaml").write_text(policy)
    port = free_port()
    script = Path(sys.executable).with_name("privacy-proxy")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "privacy_proxy.cli"]
    command += ["serve", "--policy", str(workdir / "policy.yaml"), "--port", str(port), "--upstream", upstream,
                "--log-level", log_level, "--audit-log", str(workdir / "audit" / "audit.jsonl")]
    env = {**os.environ, "PRIVACY_PROXY_AUDIT_KEY": "ab" * 32, "OPENAI_API_KEY": "sk-load-upstream"}
    log = workdir / "proxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_healthy(f"http://127.0.0.1:{port}", process, log)
    return process, f"http://127.0.0.1:{port}/v1"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the fake upstream as a process -----------------------------------------------------------------


def serve_fake(workdir: Path, chunk_delay: float) -> None:
    """Child process: run the fake until stdin closes, then write every recorded body to requests.jsonl."""
    sys.path.insert(0, str(TESTS))
    from fake_upstream import Behaviour, FakeUpstream

    fake = FakeUpstream().start()
    fake.default = Behaviour(chunk_delay=chunk_delay)
    (workdir / "upstream.url").write_text(fake.base_url)
    sys.stdin.read()  # the parent closes it when done
    fake.stop()
    with open(workdir / "requests.jsonl", "w") as out:
        out.writelines(json.dumps({"path": r.path, "body": r.body.decode("utf-8", "replace")}) + "\n" for r in fake.requests)


class FakeProcess:
    def __init__(self, workdir: Path, chunk_delay: float) -> None:
        self.workdir = workdir
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake", str(workdir), "--chunk-delay", str(chunk_delay)],
            stdin=subprocess.PIPE,
        )
        url_file = workdir / "upstream.url"
        deadline = time.monotonic() + 30
        while not (url_file.exists() and url_file.read_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.05)
        self.base_url = url_file.read_text()
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def finish(self) -> list[bytes]:
        """Stop it and return the bodies of the chat requests it received."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        lines = (self.workdir / "requests.jsonl").read_text().splitlines()
        return [r["body"].encode() for r in map(json.loads, lines) if r["path"].rstrip("/") == "/v1/chat/completions"]


# --- figures ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(outcomes: Sequence[Outcome], wall: float) -> dict[str, Any]:
    kinds = Counter(o.kind for o in outcomes)
    details = Counter(f"{o.kind}: {o.detail}" for o in outcomes if o.kind != "ok")
    latencies = [o.latency * 1000 for o in outcomes]
    ttfbs = [o.ttfb * 1000 for o in outcomes if o.ttfb is not None]
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "requests": len(outcomes),
        "outcomes": {kind: kinds.get(kind, 0) for kind in CLEAN + NOT_CLEAN},
        "failures": dict(sorted(details.items())),
        "statuses": dict(sorted(Counter(str(o.status) for o in outcomes).items())),
        "all_clean": all(o.kind in CLEAN for o in outcomes),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(outcomes) / wall, 1) if wall else None,
        "ok_rps": round(kinds.get("ok", 0) / wall, 1) if wall else None,
        "latency_ms": {f"p{q}": ms(percentile(latencies, q / 100)) for q in (50, 95, 99)} | {"max": ms(max(latencies, default=None))},
        "ttfb_ms": {f"p{q}": ms(percentile(ttfbs, q / 100)) for q in (50, 95, 99)} if ttfbs else None,
    }


def table(label: str, report: dict[str, Any]) -> str:
    o, lat, ttfb, rss = report["outcomes"], report["latency_ms"], report["ttfb_ms"] or {}, report["proxy_rss_mb"]
    up = report["upstream"]
    held = up.get("held_after") or {"established": None, "close_wait": None}
    after, cpu = report["healthy_after"], report["cpu_s"]
    rows = [
        ("requests / concurrency", f"{report['requests']} / {report['config']['concurrency']} ({'stream' if report['config']['stream'] else 'non-stream'})"),
        ("ok", o["ok"]),
        ("failed cleanly: http error / stream error event", f"{o['http_error']} / {o['stream_error']}"),
        ("not clean: transport / incomplete / wrong / mixed",
         f"{o['transport_error']} / {o['incomplete']} / {o['wrong_answer']} / {o['mixed']}"),
        ("upstream bodies / with a raw value / untokenized", f"{up['bodies']} / {up['raw_value_bodies']} / {up['untokenized_bodies']}"),
        ("throughput (all / ok)", f"{report['throughput_rps']} / {report['ok_rps']} req/s in {report['wall_s']} s"),
        ("latency p50 / p95 / p99 / max", f"{lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']} ms"),
        ("time to first byte p50 / p95 / p99", f"{ttfb.get('p50')} / {ttfb.get('p95')} / {ttfb.get('p99')} ms" if ttfb else "n/a"),
        ("proxy RSS before / peak / after (VmHWM)", f"{rss['before']} / {rss['peak']} / {rss['after']} MB ({rss['hwm']})"),
        ("proxy upstream connections: peak / held after (established + close-wait)",
         f"{report['upstream']['peak_connections']} / {held['established']} + {held['close_wait']}"),
        ("CPU s: proxy (per request) / client / upstream",
         f"{cpu['proxy']} ({cpu['proxy_per_request_ms']} ms) / {cpu['client']} / {cpu.get('upstream')}"),
        ("afterwards: /healthz, one more stream",
         f"{after['healthz']}, {after['next_request']} ({after['next_request_ms']} ms)"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"load: {label}"] + [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [f"    {k}: {v}" for k, v in report["failures"].items()]
    return "\n".join(lines)


async def measure(base_url: str, pid: int, jobs: Sequence[tuple[Persona, bool]], warmup: Sequence[tuple[Persona, bool]],
                  concurrency: int, values: ValueIndex, upstream_port: int | None = None,
                  upstream_pid: int | None = None, settle: float = 2.0) -> tuple[dict[str, Any], list[Outcome]]:
    """Warm up, then fire the (persona, stream) jobs while sampling the proxy; the summary and the outcomes."""
    async with client_for() as client:
        # Lazy imports, first connections, allocator arenas: not part of the load.
        warm = await asyncio.gather(*(one_request(client, base_url, p, s, values) for p, s in warmup))
        if any(o.kind != "ok" for o in warm):
            raise RuntimeError(f"warm-up failed: {Counter(f'{o.kind}: {o.detail}' for o in warm if o.kind != 'ok')}")
    before = rss_kib(pid) or 0
    cpu_before = {name: cpu_seconds(p) or 0.0 for name, p in (("proxy", pid), ("client", os.getpid()), ("upstream", upstream_pid)) if p}
    sampler = Sampler(pid, upstream_port)
    sampler.start()
    outcomes, wall = await fire(base_url, jobs, concurrency, values)
    await asyncio.sleep(settle)  # connections closed, audit written: what stays
    await sampler.stop()
    after = rss_kib(pid) or 0
    report = summarize(outcomes, wall)
    # CPU seconds over the run (settling included) of each process: on a small machine the client and
    # the fake compete with the proxy for the cores.
    cpu = {name: round((cpu_seconds(p) or 0.0) - cpu_before[name], 2)
           for name, p in (("proxy", pid), ("client", os.getpid()), ("upstream", upstream_pid)) if p}
    report["cpu_s"] = cpu | {"proxy_per_request_ms": round(1000 * cpu["proxy"] / max(1, len(outcomes)), 2)}
    def mb(kib: int) -> float:
        return round(kib / 1024, 1)

    report["proxy_rss_mb"] = {"before": mb(before), "peak": mb(max(sampler.rss, default=before)), "after": mb(after),
                              "hwm": mb(rss_kib(pid, "VmHWM") or 0), "samples": len(sampler.rss)}
    report["upstream"] = {"peak_connections": max(sampler.upstream_connections, default=None)}
    if upstream_port is not None:
        # What the proxy still holds once the load is over: idle keep-alive connections (at most the
        # pool's max_keepalive_connections, 64) and nothing else.
        report["upstream"]["held_after"] = {
            "established": connections_to(upstream_port), "close_wait": connections_to(upstream_port, (CLOSE_WAIT,))}
    return report, outcomes


async def still_serves(base_url: str, person: Persona, values: ValueIndex) -> dict[str, Any]:
    """After the load: /healthz, and whether one more streamed request gets its answer."""
    async with client_for(timeout=30) as client:
        try:
            health = (await client.get(base_url.removesuffix("/v1") + "/healthz")).status_code
        except httpx.HTTPError as exc:
            health = type(exc).__name__
        outcome = await one_request(client, base_url, person, True, values)
    return {"healthz": health, "next_request": outcome.kind if outcome.kind == "ok" else f"{outcome.kind}: {outcome.detail}",
            "next_request_ms": round(outcome.latency * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight at once (default: all)")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chunk-delay", type=float, default=0.01, help="seconds between the fake's SSE events")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the load against the same proxy (new values each round): what it keeps between loads")
    parser.add_argument("--log-level", default="info", help="the proxy's (info: one line per request, as deployed)")
    parser.add_argument("--label", help="the entry in the JSON file (default: stream / no_stream)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/load.json")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (proxy log, audit, policy)")
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.chunk_delay)
        return
    concurrency = args.concurrency or args.requests
    label = args.label or ("stream" if args.stream else "no_stream")
    soft, hard = raise_fd_limit()
    everyone = personas(args.requests * args.rounds + args.warmup + 1)
    rounds = [everyone[k * args.requests : (k + 1) * args.requests] for k in range(args.rounds)]
    warmup, spare = everyone[args.requests * args.rounds : -1], everyone[-1]
    values = ValueIndex(everyone)

    async def load_rounds(base_url: str, pid: int, upstream: FakeProcess) -> list[dict[str, Any]]:
        reports = []
        for k, people in enumerate(rounds):
            report, _ = await measure(base_url, pid, [(p, args.stream) for p in people],
                                      [(p, args.stream) for p in warmup] if k == 0 else [], concurrency, values,
                                      upstream_port=upstream.port, upstream_pid=upstream.process.pid)
            reports.append(report)
        return reports

    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        workdir = Path(tmp) if args.keep is None else args.keep
        workdir.mkdir(parents=True, exist_ok=True)
        fake = FakeProcess(workdir, args.chunk_delay)
        proxy = None
        try:
            proxy, base_url = start_proxy(policy_text(everyone), workdir, fake.base_url, args.log_level)
            reports = asyncio.run(load_rounds(base_url, proxy.pid, fake))
            report = reports[0]
            if len(reports) > 1:
                report["later_rounds"] = [
                    {key: r[key] for key in ("outcomes", "failures", "wall_s", "latency_ms", "ttfb_ms", "proxy_rss_mb")}
                    | {"upstream_held_after": r["upstream"]["held_after"]} for r in reports[1:]
                ]
                report["all_clean"] = all(r["all_clean"] for r in reports)
            report["healthy_after"] = asyncio.run(still_serves(base_url, spare, values))
            proxy_log = (workdir / "proxy.log").read_text(errors="replace")
        finally:
            if proxy is not None:
                stop(proxy)
            bodies = fake.finish()
    seen, leaked, untokenized = upstream_leaks(bodies, values)
    report["upstream"] |= {"bodies": seen, "raw_value_bodies": leaked, "untokenized_bodies": untokenized}
    report["proxy_log_warnings"] = dict(Counter(
        re.sub(r"^\S+ \S+ ", "", line)[:120] for line in proxy_log.splitlines() if " WARNING " in line or " ERROR " in line
    ).most_common(10))
    report["config"] = {"requests": args.requests, "rounds": args.rounds, "concurrency": concurrency, "stream": args.stream,
                        "chunk_delay_s": args.chunk_delay, "warmup": args.warmup, "cpus": os.cpu_count(),
                        "nofile": [soft, hard], "upstream_pool": "max_connections=512, pool timeout 5 s (policy)"}
    print(table(label, report))
    for k, later in enumerate(report.get("later_rounds", []), 2):
        print(f"  round {k}: {later['outcomes']['ok']} ok, {dict(Counter(later['failures']))}, "
              f"latency p50 {later['latency_ms']['p50']} ms, RSS after {later['proxy_rss_mb']['after']} MB, "
              f"upstream held after {later['upstream_held_after']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.json.read_text()) if args.json.exists() else {}
    existing[label] = report
    args.json.write_text(json.dumps(existing, indent=2) + "\n")
    if not report["all_clean"] or leaked:
        sys.exit(1)


if __name__ == "__main__":
    main()
