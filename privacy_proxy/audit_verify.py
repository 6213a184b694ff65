"""Verify an audit log across its rotated files and against its checkpoints.

Order of work:
1. Find the files: from the active log back through each first record's ``previous_file`` to the file
   that starts the chain. A named file that is absent is a *missing file*.
2. Read the checkpoints (``<stem>.checkpoints<suffix>``): each one's hash, HMAC (with the key), link to
   the previous checkpoint, and Ed25519 signature (with public keys).
3. Walk every record oldest first: hash, HMAC, ``prev_hash`` chain, ``seq``; at each file boundary the
   ``file_start`` record must name the previous file, its head and its sha256 (a file cut short after
   rotation is *truncated*); a record a checkpoint covers must have the checkpointed hash.
4. The log must reach the last checkpoint (else *truncated*).

With public keys and no HMAC key, records up to the last signed checkpoint are authenticated through the
chain; records after it are reported as `unsigned_tail`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from privacy_proxy.audit import VerifyResult
from privacy_proxy.audit_format import (
    GENESIS_HASH,
    check_checkpoint_line,
    check_line,
    checkpoint_path,
    first_line,
    rotated_files,
)

__all__ = ["chain_files", "iter_records", "verify_chain"]


class _Missing(Exception):
    def __init__(self, missing: str, named_by: Path) -> None:
        super().__init__(missing)
        self.missing, self.named_by = missing, named_by


def _previous_of(path: Path) -> str | None:
    """The ``previous_file`` named by the first record of ``path``, if it is a file_start record."""
    try:
        raw = first_line(path)
        first = json.loads(raw) if raw else None
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(first, dict) and first.get("event") == "file_start" and isinstance(first.get("previous_file"), str):
        return first["previous_file"]
    return None


def _discover(path: Path) -> tuple[list[Path], _Missing | None]:
    """The log's files oldest first, as far back as they exist, and what is missing (if anything)."""
    path = Path(path)
    current = path
    if not path.exists() or path.stat().st_size == 0:
        older = rotated_files(path)
        if not older:
            if not path.exists():
                raise FileNotFoundError(path)
        else:
            current = older[-1]  # stopped between a rotation's rename and the new file: start at the newest
    files = [current]
    seen = {current.name}
    while (previous := _previous_of(files[0])) is not None:
        candidate = path.parent / Path(previous).name
        if candidate.name in seen:
            break  # a cycle: the chain check reports it
        if not candidate.exists():
            return files, _Missing(candidate.name, files[0])
        seen.add(candidate.name)
        files.insert(0, candidate)
    return files, None


def chain_files(path: Path) -> list[Path]:
    """The log's files, oldest first. Raises _Missing for a named file that is absent; FileNotFoundError
    when there is no log at all."""
    files, missing = _discover(path)
    if missing is not None:
        raise missing
    return files


def iter_records(path: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Every parseable record of the log, oldest first, without verifying (for reports and unsealing);
    files missing from the chain are skipped."""
    try:
        files, _ = _discover(path)
    except FileNotFoundError:
        return
    for file in files:
        with open(file, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    record = json.loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(record, dict):
                    yield file, lineno, record


def _load_checkpoints(
    path: Path, key: bytes | None, public_keys: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], VerifyResult | None]:
    from privacy_proxy.audit_crypto import verify_signature

    checkpoints: list[dict[str, Any]] = []
    if not path.exists():
        return checkpoints, None
    prev, last_seq = GENESIS_HASH, -1
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            reason, digest = check_checkpoint_line(raw, key)
            checkpoint = json.loads(raw) if not reason else {}
            if not reason and checkpoint["prev"] != prev:
                reason = "broken checkpoint chain (checkpoint inserted, deleted or reordered)"
            if not reason and checkpoint["seq"] <= last_seq:
                reason = "checkpoint seq out of order"
            if not reason and public_keys is not None:
                reason = verify_signature(checkpoint, public_keys)
            if reason:
                return checkpoints, VerifyResult(False, 0, lineno, f"checkpoint: {reason}", file=path)
            checkpoints.append(checkpoint)
            prev, last_seq = digest, checkpoint["seq"]
    return checkpoints, None


def verify_chain(
    path: Path,
    key: bytes | None,
    *,
    public_keys: Mapping[str, Any] | None = None,
    until_seq: int | None = None,
    expect_head: str | None = None,
) -> VerifyResult:
    try:
        files = chain_files(path)
    except FileNotFoundError:
        return VerifyResult(False, 0, None, "cannot read log: No such file or directory", file=path)
    except _Missing as missing:
        return VerifyResult(
            False, 0, 1, f"missing file {missing.missing} (named by the first record of {missing.named_by.name})",
            file=missing.named_by,
        )
    except OSError as e:
        return VerifyResult(False, 0, None, f"cannot read log: {e.strerror}", file=path)

    checkpoints, failure = _load_checkpoints(checkpoint_path(path), key, public_keys)
    if failure is not None:
        return failure
    pending = {checkpoint["seq"]: checkpoint for checkpoint in checkpoints}
    matched, last_covered = 0, -1
    prev, count = GENESIS_HASH, 0
    previous_file: Path | None = None
    previous_sha, previous_line = "", 0
    last_file, last_line = files[-1], 0
    stop = False
    for file in files:
        digest_of_file = hashlib.sha256()
        lineno = 0
        try:
            f = open(file, "rb")
        except OSError as e:
            return VerifyResult(False, count, None, f"cannot read {file.name}: {e.strerror}", file=file)
        with f:
            # Binary iteration splits on b"\n" only; str.splitlines would also split on U+2028 inside values.
            for lineno, raw in enumerate(f, 1):
                digest_of_file.update(raw)
                if lineno == 1 and previous_file is not None:
                    problem = _link_problem(raw, previous_file, previous_sha, prev)
                    if problem is not None:
                        where, reason = problem
                        if where == "previous":
                            return VerifyResult(False, count, previous_line + 1, reason, file=previous_file)
                        return VerifyResult(False, count, 1, reason, file=file)
                reason, digest = check_line(raw, count, prev, key)
                if reason:
                    return VerifyResult(False, count, lineno, reason, file=file)
                if b'"file_start"' in raw and not (lineno == 1 and previous_file is not None):
                    record = json.loads(raw)
                    if record.get("event") == "file_start":
                        return VerifyResult(False, count, lineno, "file_start record out of place (files reordered)", file=file)
                checkpoint = pending.pop(count, None)
                if checkpoint is not None:
                    if checkpoint["head"] != digest:
                        return VerifyResult(
                            False, count, lineno, f"record differs from the checkpoint of {checkpoint['time']}", file=file
                        )
                    matched, last_covered = matched + 1, count
                if expect_head is not None and count == until_seq and digest != expect_head:
                    return VerifyResult(False, count, lineno, "record differs from the writer's head", file=file)
                prev, count = digest, count + 1
                if until_seq is not None and count > until_seq:
                    stop = True
                    break
        if stop:
            break
        previous_file, previous_sha, previous_line = file, digest_of_file.hexdigest(), lineno
        last_file, last_line = file, lineno

    if not stop and pending:
        first_missing = min(pending)
        return VerifyResult(
            False, count, last_line + 1,
            f"truncated: the log ends at seq {count - 1} but a checkpoint of {pending[first_missing]['time']} "
            f"covers seq {first_missing}",
            file=last_file, checkpoints=matched,
        )
    if until_seq is not None and not stop and count <= until_seq:
        return VerifyResult(False, count, last_line + 1, f"truncated: the log ends before seq {until_seq}", file=last_file)
    unsigned_tail = None
    notes = []
    if public_keys is not None:
        if not matched:
            return VerifyResult(False, count, None, "no signed checkpoint covers this log: the public key proves nothing",
                                file=path)
        unsigned_tail = count - 1 - last_covered
        if unsigned_tail:
            notes.append(f"{unsigned_tail} records after the last signed checkpoint")
    if key is None:
        notes.append("HMACs not checked: no key given")
    if checkpoints:
        notes.append(f"{matched} checkpoints{' signed' if public_keys is not None else ''}")
    if len(files) > 1:
        notes.append(f"{len(files)} files")
    reason = "ok" + (f" ({'; '.join(notes)})" if notes else "")
    return VerifyResult(True, count, None, reason, file=None, checkpoints=matched, unsigned_tail=unsigned_tail)


def _link_problem(raw: bytes, previous_file: Path, previous_sha: str, prev: str) -> tuple[str, str] | None:
    """Check a new file's first record against the file before it; (where, reason) or None."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # check_line reports it
    if not isinstance(record, dict) or record.get("event") != "file_start":
        return "this", "first record of a rotated-into file is not a file_start record"
    if record.get("previous_file") != previous_file.name:
        return "this", f"file_start names {record.get('previous_file')!r}, not the previous file {previous_file.name}"
    if record.get("previous_sha256") != previous_sha:
        return "previous", (
            f"truncated or altered after rotation: {previous_file.name} no longer matches the sha256 "
            "recorded when the next file was started"
        )
    if record.get("previous_head") != prev:
        return "previous", f"truncated: {previous_file.name} does not end with the head the next file names"
    return None
