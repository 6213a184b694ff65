"""Batch scanning for `privacy-proxy scan`: numbered input batches, resumable output, and the local engine.

    input ──▶ InputReader (batches of N lines, running sha256 of the input) ──▶ engine ──▶ sink (in input order)

An engine turns each `Batch` into output text with `scan.scan_batch` and hands the texts to the sink in batch
order; the local engine runs in this process, the Ray engine (scan_ray.py) on a cluster. Both write through
`scan.format_record`, so for the same input and policy their outputs are byte-identical.

`CheckpointedOutput` makes a run resumable: after each batch it fsyncs the output file, then atomically replaces
FILE.progress with how many input lines are fully written, the output's size at that point, a digest of those
input lines, and what else fixes the output (policy sha256, --explain). `--resume` truncates the output to that
size (dropping a torn tail line, or whole lines written after the last checkpoint), checks that the same input
lines and policy come in again, and continues after the last completed line: no line lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from privacy_proxy.errors import ConfigError
from privacy_proxy.runtime import Runtime
from privacy_proxy.scan import scan_batch

PROGRESS_SUFFIX = ".progress"
_FORMAT = 1


@dataclass(frozen=True)
class Batch:
    index: int  # position in the run, 0-based
    first_line: int  # input line number of lines[0], 1-based
    lines: tuple[str, ...]
    input_digest: str  # sha256 of every input line up to and including this batch's last

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1


class InputReader:
    """Reads input lines into batches, numbering them from the start of the input even after a `skip`."""

    def __init__(self, stream: Iterable[str], batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        self._lines = iter(stream)
        self._size = batch_size
        self._hash = hashlib.sha256()
        self._next_line = 1

    def skip(self, count: int) -> str:
        """Consume the first `count` lines (already written by an earlier run); return their digest."""
        for _ in range(count):
            line = next(self._lines, None)
            if line is None:
                raise ConfigError(f"--resume: the input has fewer lines than the {count} already written")
            self._hash.update(line.encode("utf-8", "surrogatepass"))
            self._next_line += 1
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[Batch]:
        index = 0
        while True:
            lines = []
            for line in self._lines:
                self._hash.update(line.encode("utf-8", "surrogatepass"))
                lines.append(line)
                if len(lines) == self._size:
                    break
            if not lines:
                return
            yield Batch(index, self._next_line, tuple(lines), self._hash.hexdigest())
            self._next_line += len(lines)
            index += 1


class Sink(Protocol):
    """Receives each batch's output text, in batch order."""

    def write(self, batch: Batch, text: str) -> None: ...

    def finish(self) -> None: ...


class StreamSink:
    """Standard output (or any text stream): no checkpoint, so no --resume."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, batch: Batch, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def finish(self) -> None:
        self._stream.flush()


class CheckpointedOutput:
    """An output file with a FILE.progress checkpoint written after each batch (see the module docstring)."""

    def __init__(self, path: Path, fingerprint: dict[str, Any], resume: bool) -> None:
        self.path = Path(path)
        self.progress_path = self.path.with_name(self.path.name + PROGRESS_SUFFIX)
        self._fingerprint = fingerprint
        self.lines_done = 0
        self.input_digest = hashlib.sha256().hexdigest()
        self.complete = False
        size = 0
        if resume and self.progress_path.exists():
            state = self._read_progress()
            self.lines_done, size = int(state["input_lines"]), int(state["output_bytes"])
            self.input_digest, self.complete = state["input_sha256"], bool(state.get("complete"))
            try:
                actual = self.path.stat().st_size
            except FileNotFoundError:
                actual = -1
            if actual < size:
                raise ConfigError(f"--resume: {self.path} is shorter than its checkpoint says; start over without --resume")
        elif resume and self.path.exists() and self.path.stat().st_size > 0:
            raise ConfigError(f"--resume: {self.progress_path} is missing, so where {self.path} stopped is unknown")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+b")
        self._file.truncate(size)  # drops a torn tail line and anything written after the last checkpoint
        self._file.seek(size)
        self._bytes = size
        if not resume or not self.progress_path.exists():
            self._save()

    def _read_progress(self) -> dict[str, Any]:
        try:
            state = json.loads(self.progress_path.read_text(encoding="utf-8"))
            fields = (state["input_lines"], state["output_bytes"], state["input_sha256"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"--resume: cannot read {self.progress_path}: {exc}") from None
        if state.get("format") != _FORMAT or [type(f) for f in fields] != [int, int, str]:
            raise ConfigError(f"--resume: {self.progress_path} is not a scan checkpoint")
        for key, value in self._fingerprint.items():
            if state.get(key) != value:
                raise ConfigError(
                    f"--resume: {self.path} was written with another {key.replace('_', ' ')}; start over without --resume"
                )
        return state

    def check_input(self, digest: str) -> None:
        """The digest of the input lines skipped on resume must match the one recorded with them."""
        if digest != self.input_digest:
            raise ConfigError(f"--resume: the first {self.lines_done} input lines differ from those already scanned")

    def _save(self) -> None:
        state = {"format": _FORMAT, "input_lines": self.lines_done, "output_bytes": self._bytes,
                 "input_sha256": self.input_digest, "complete": self.complete, **self._fingerprint}
        tmp = self.progress_path.with_name(self.progress_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(state) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.progress_path)
        _fsync_dir(self.progress_path.parent)

    def write(self, batch: Batch, text: str) -> None:
        data = text.encode("utf-8")
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())  # the lines are on disk before the checkpoint says so
        self._bytes += len(data)
        self.lines_done, self.input_digest = batch.last_line, batch.input_digest
        self._save()

    def finish(self) -> None:
        self.complete = True
        self._save()
        self._file.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def run_local(reader: InputReader, runtime: Runtime, sink: Sink, explain: bool = False,
              on_batch: Callable[[Batch], None] | None = None) -> None:
    """The local engine: every batch in this process, in order."""
    for batch in reader:
        sink.write(batch, scan_batch(batch.first_line, batch.lines, runtime, explain))
        if on_batch is not None:
            on_batch(batch)
    sink.finish()


@dataclass(frozen=True)
class ScanOptions:
    """What `privacy-proxy scan` was asked to do (the CLI's flags)."""

    policy: Path
    input: Path | None = None
    output: Path | None = None
    resume: bool = False
    engine: str = "local"  # local | ray
    address: str | None = None
    workers: int | None = None
    batch_size: int = 64
    explain: bool = False
    progress: bool = False  # a tqdm bar on stderr


def run_scan(options: ScanOptions, stdin: IO[str], stdout: IO[str]) -> None:
    """Load the policy and key, open input and output (resuming if asked), and run the chosen engine."""
    from privacy_proxy.audit import load_or_create_key
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import derive_secret

    if options.engine not in ("local", "ray"):
        raise ConfigError(f"--engine must be local or ray, not {options.engine!r}")
    if options.engine != "ray" and (options.address or options.workers):
        raise ConfigError("--address and --workers need --engine ray")
    if options.resume and options.output is None:
        raise ConfigError("--resume needs --output FILE (the checkpoint lives next to it)")
    if options.workers is not None and options.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if options.engine == "ray":
        from privacy_proxy.scan_ray import import_ray

        import_ray()  # before any work: a missing extra is a clear, early error
    loaded = load_policy(options.policy)
    audit = loaded.policy.audit
    try:
        secret = derive_secret(load_or_create_key(audit.hmac_key_env, Path(audit.hmac_key_file)))
    except Exception as exc:  # key file problems: say what, without a traceback
        raise ConfigError(f"cannot start scan: {exc}") from None
    stream = open(options.input, encoding="utf-8") if options.input else stdin  # noqa: SIM115
    sink: Sink = StreamSink(stdout)
    output: CheckpointedOutput | None = None
    bar = None
    try:
        reader = InputReader(stream, options.batch_size)
        skipped = 0
        if options.output is not None:
            fingerprint = {"policy_sha256": loaded.sha256, "explain": options.explain}
            sink = output = CheckpointedOutput(options.output, fingerprint, options.resume)
            skipped = output.lines_done
            output.check_input(reader.skip(skipped))
        if options.progress:
            bar = _progress_bar(options.input, skipped)
        on_batch = (lambda batch: bar.update(len(batch.lines))) if bar is not None else None
        if options.engine == "ray":
            from privacy_proxy.scan_ray import run_ray

            policy_bytes = loaded.path.read_bytes()
            if hashlib.sha256(policy_bytes).hexdigest() != loaded.sha256:
                raise ConfigError(f"{loaded.path}: the policy file changed while the scan started")
            run_ray(reader, sink, policy_bytes=policy_bytes, policy_path=str(loaded.path), secret=secret,
                    explain=options.explain, address=options.address, workers=options.workers, on_batch=on_batch)
        else:
            run_local(reader, Runtime.build(loaded, secret), sink, options.explain, on_batch)
    finally:
        if bar is not None:
            bar.close()
        if output is not None:
            output.close()
        if options.input:
            stream.close()


def _progress_bar(input: Path | None, skipped: int) -> Any:
    from tqdm import tqdm

    total = None
    if input is not None:
        with open(input, "rb") as f:
            total = sum(1 for _ in f) - skipped
    return tqdm(total=total, unit="line", file=sys.stderr, dynamic_ncols=True)
