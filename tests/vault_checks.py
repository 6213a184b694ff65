"""Checks every vault backend must pass, shared by the SQLite and Redis test modules."""

from __future__ import annotations

import threading

from privacy_proxy.vault import Vault


def hammer(vault: Vault, threads: int = 8, per_thread: int = 100) -> None:
    """Puts and reads back from `threads` threads at once; raises the first failure any thread met."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                vault.put(f"t{t}", str(i), {"t": t, "i": i})
                assert vault.get(f"t{t}", str(i)) == {"t": t, "i": i}
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    running = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    if errors:
        raise errors[0]
