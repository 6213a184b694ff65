"""Start-up hook: with this folder on PYTHONPATH, Python imports it before anything else.

If ``PRIVACY_PROXY_NETGUARD`` is set, the loopback-only network guard is
installed; if ``PRIVACY_PROXY_NETGUARD_LOG`` names a file, each blocked attempt
is appended to it as one line, so a test can check that a subprocess made none.
guard.py is loaded by path (not via sys.path), so this works from any cwd.
"""

from __future__ import annotations

import os
import sys


def _setup() -> None:
    if not os.environ.get("PRIVACY_PROXY_NETGUARD"):
        return
    import importlib.util

    name = "_privacy_proxy_netguard"
    guard = sys.modules.get(name)
    if guard is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard.py")
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        guard = importlib.util.module_from_spec(spec)
        sys.modules[name] = guard
        spec.loader.exec_module(guard)
    log_path = os.environ.get("PRIVACY_PROXY_NETGUARD_LOG")
    if log_path:

        def log(violation: object) -> None:
            # Open per line: the process may be killed at any moment.
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(f"pid {os.getpid()}: {violation}\n")

        guard.listeners.append(log)
    guard.install()


try:
    _setup()
except Exception as exc:  # never break interpreter start-up, but say loudly that the guard is off
    sys.stderr.write(f"netguard: NOT installed: {exc!r}\n")
