"""The tests' fake upstream, run as its own process for benchmarks.

It echoes like in the tests; a model named `answer-N` gets an answer of N characters instead
(streamed in 1–7 character pieces), so a long streamed answer costs no long prompt to scan.
Usage: python bench/bench_upstream.py PORT_FILE  (writes the base URL to PORT_FILE, runs until killed)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_upstream import Behaviour, FakeUpstream, RecordedRequest  # noqa: E402

FILLER = "The quick brown fox jumps over the lazy dog while the proxy restores every token. "


class BenchUpstream(FakeUpstream):
    async def _chat(self, rec: RecordedRequest):  # type: ignore[override]
        model = str(json.loads(rec.body or b"{}").get("model", ""))
        if model.startswith("answer-"):
            size = int(model.removeprefix("answer-"))
            self.push(Behaviour(answer=(FILLER * (size // len(FILLER) + 1))[:size]))
        with self._lock:
            self.requests.clear()  # a benchmark sends thousands; keep memory flat
        return await super()._chat(rec)


def main() -> None:
    upstream = BenchUpstream().start()
    Path(sys.argv[1]).write_text(upstream.base_url)
    try:
        while True:
            time.sleep(3600)
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
