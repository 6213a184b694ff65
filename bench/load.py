"""Load: many concurrent chat requests through a real proxy, each carrying its own private values.

Starts the tests' fake upstream (its own process, streaming the echo in small pieces with a delay
between them) and `privacy-proxy serve` (a test-like policy: `ner: none`, a deny list holding one
generated name per request, emails/phones/EMP-###### ids by pattern) on loopback, then fires
`--requests` chat requests, `--concurrency` at a time, with one httpx.AsyncClient. Request *i* has its
own name, email, phone and employee id, and the fake echoes its prompt back, so the exact answer is known.

Checked and reported:
  - outcome of every request: `ok` (200, answer exactly its own prompt), failed cleanly (`http_error`: an
    OpenAI-shaped error body; `stream_error`: a `data: {"error": ...}` event), or not clean
    (`transport_error`, `incomplete`, `wrong_answer`, `mixed`: another request's value in the answer);
  - the upstream never saw a raw value (every body the fake recorded, against every value of every request);
  - the proxy's RSS (`/proc/<pid>/status` VmRSS, sampled every 50 ms): before, peak, after; its
    connections to the upstream (from `/proc/net/tcp`): peak;
  - throughput, latency p50/p95/p99, time to first byte for streams.

    .venv/bin/python bench/load.py [--requests 1000] [--concurrency 1000] [--stream/--no-stream]
                                   [--chunk-delay 0.01] [--label NAME] [--json bench/results/load.json]

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
    """A test-like policy: no NER, the personas' names as a deny list, ids by pattern."""
    names = json.dumps([p.name for p in people])
    return f"""
name: load
upstream: {{base_url: "http://127.0.0.1:1/v1", timeouts: {{connect: 2, read: 30, write: 10, pool: 5}}}}
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
                buffer += chunk
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


def client_for(concurrency: int, timeout: float = 120.0) -> httpx.AsyncClient:
    """A client whose own pool never queues the load (the proxy's limits are what is measured)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=30.0, pool=None),
        limits=httpx.Limits(max_connections=concurrency + 16, max_keepalive_connections=concurrency + 16),
        trust_env=False,
    )


async def fire(base_url: str, jobs: Sequence[tuple[Persona, bool]], concurrency: int,
               values: ValueIndex, client: httpx.AsyncClient | None = None) -> tuple[list[Outcome], float]:
    """Send every (persona, stream) job, at most `concurrency` at a time; outcomes and wall seconds."""
    gate = asyncio.Semaphore(concurrency)
    own = client is None
    client = client or client_for(concurrency)

    async def run(person: Persona, stream: bool) -> Outcome:
        async with gate:
            return await one_request(client, base_url, person, stream, values)

    try:
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(run(p, s) for p, s in jobs))
        return list(outcomes), time.perf_counter() - start
    finally:
        if own:
            await client.aclose()


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


def connections_to(port: int) -> int:
    """Established TCP connections (IPv4) whose remote end is `port`: the proxy's upstream connections."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    suffix = f":{port:04X}"
    return sum(1 for row in rows if (cols := row.split()) and cols[2].endswith(suffix) and cols[3] == "01")


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


def widen_backlog(fake: Any, backlog: int = 4096) -> None:
    """The fake listens with a backlog of 128; hundreds of simultaneous connects from the proxy's pool
    would overflow it (dropped SYNs, 1 s retransmits: the fake's artefact, not the proxy's). listen()
    again on a duplicate of its socket raises the backlog of the same socket."""
    for server in fake._server.servers:
        for sock in server.sockets:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
            try:
                dup.listen(backlog)
            finally:
                dup.close()


def serve_fake(workdir: Path, chunk_delay: float) -> None:
    """Child process: run the fake until stdin closes, then write every recorded body to requests.jsonl."""
    sys.path.insert(0, str(TESTS))
    from fake_upstream import Behaviour, FakeUpstream

    fake = FakeUpstream().start()
    widen_backlog(fake)
    fake.default = Behaviour(chunk_delay=chunk_delay)
    (workdir / "upstream.url").write_text(fake.base_url)
    sys.stdin.read()  # the parent closes it when done
    fake.stop()
    with open(workdir / "requests.jsonl", "w") as out:
        for request in fake.requests:
            out.write(json.dumps({"path": request.path, "body": request.body.decode("utf-8", "replace")}) + "\n")


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
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(outcomes: Sequence[Outcome], wall: float) -> dict[str, Any]:
    kinds = Counter(o.kind for o in outcomes)
    details = Counter(f"{o.kind}: {o.detail}" for o in outcomes if o.kind != "ok")
    latencies = [o.latency * 1000 for o in outcomes]
    ttfbs = [o.ttfb * 1000 for o in outcomes if o.ttfb is not None]
    ms = lambda v: None if v is None else round(v, 1)  # noqa: E731
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
        ("proxy upstream connections, peak", report["upstream"]["peak_connections"]),
        ("healthy afterwards", report["healthy_after"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"load: {label}"] + [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [f"    {k}: {v}" for k, v in report["failures"].items()]
    return "\n".join(lines)


async def measure(base_url: str, pid: int, people: Sequence[Persona], warmup: Sequence[Persona], stream: bool,
                  concurrency: int, values: ValueIndex, upstream_port: int | None = None,
                  settle: float = 2.0) -> tuple[dict[str, Any], list[Outcome]]:
    """Warm up, then fire the load while sampling the proxy; the summary and the outcomes."""
    async with client_for(concurrency) as client:
        # Lazy imports, first connections, allocator arenas: not part of the load.
        await asyncio.gather(*(one_request(client, base_url, person, stream, values) for person in warmup))
    before = rss_kib(pid) or 0
    sampler = Sampler(pid, upstream_port)
    sampler.start()
    outcomes, wall = await fire(base_url, [(p, stream) for p in people], concurrency, values)
    await asyncio.sleep(settle)  # connections closed, audit written: what stays
    await sampler.stop()
    after = rss_kib(pid) or 0
    report = summarize(outcomes, wall)
    mb = lambda kib: round(kib / 1024, 1)  # noqa: E731
    report["proxy_rss_mb"] = {"before": mb(before), "peak": mb(max(sampler.rss, default=before)), "after": mb(after),
                              "hwm": mb(rss_kib(pid, "VmHWM") or 0), "samples": len(sampler.rss)}
    report["upstream"] = {"peak_connections": max(sampler.upstream_connections, default=None)}
    return report, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight at once (default: all)")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chunk-delay", type=float, default=0.01, help="seconds between the fake's SSE events")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--log-level", default="info", help="the proxy's (info: one line per request, as deployed)")
    parser.add_argument("--label", help="the entry in the JSON file (default: stream / no_stream)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/load.json")
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake, args.chunk_delay)
        return
    concurrency = args.concurrency or args.requests
    label = args.label or ("stream" if args.stream else "no_stream")
    soft, hard = raise_fd_limit()
    everyone = personas(args.requests + args.warmup)
    people, warmup = everyone[: args.requests], everyone[args.requests :]
    values = ValueIndex(everyone)
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        workdir = Path(tmp)
        fake = FakeProcess(workdir, args.chunk_delay)
        proxy = None
        try:
            proxy, base_url = start_proxy(policy_text(everyone), workdir, fake.base_url, args.log_level)
            report, _ = asyncio.run(measure(base_url, proxy.pid, people, warmup, args.stream, concurrency, values,
                                            upstream_port=fake.port))
            try:
                report["healthy_after"] = httpx.get(base_url.removesuffix("/v1") + "/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                report["healthy_after"] = False
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
    report["config"] = {"requests": args.requests, "concurrency": concurrency, "stream": args.stream,
                        "chunk_delay_s": args.chunk_delay, "warmup": args.warmup, "cpus": os.cpu_count(),
                        "nofile": [soft, hard], "upstream_pool": "max_connections=512, pool timeout 5 s (policy)"}
    print(table(label, report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.json.read_text()) if args.json.exists() else {}
    existing[label] = report
    args.json.write_text(json.dumps(existing, indent=2) + "\n")
    if not report["all_clean"] or leaked:
        sys.exit(1)


if __name__ == "__main__":
    main()
