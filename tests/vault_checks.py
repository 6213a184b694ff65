"""Checks every vault backend must pass, shared by the SQLite and Redis test modules."""

from __future__ import annotations

import threading

from privacy_proxy.vault import Vault
from privacy_proxy.vault_crypto import VaultKeyring

# Private-looking values of several scripts: none may be found where a backend stores records.
VALUES = ["jane.doe@example.com", "Zoë Müller-Lüdenscheidt", "212-555-0143", "4111 1111 1111 1111", "東京都港区"]


def ring(*hex_keys: str) -> VaultKeyring:
    return VaultKeyring.parse(",".join(hex_keys), "test")


def check_put_get_delete_overwrite(vault: Vault) -> None:
    """The basic contract: a record reads back as written, per (scope, key); overwrite and delete work."""
    record = {"restorable": {"[PERSON_1]": VALUES[1]}, "n": [1, 2.5, None, True]}
    vault.put("resp", "resp_1", record)
    assert vault.get("resp", "resp_1") == record
    assert vault.get("resp", "resp_2") is None and vault.get("other", "resp_1") is None
    vault.put("resp", "resp_1", {"v": 2})
    assert vault.get("resp", "resp_1") == {"v": 2}
    vault.delete("resp", "resp_1")
    vault.delete("resp", "never-there")
    assert vault.get("resp", "resp_1") is None


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
