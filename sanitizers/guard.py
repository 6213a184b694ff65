"""Leak guard: the last check before anything leaves the machine (invariant 1).

Walks every string in the outbound JSON body (message text, tool arguments, names, metadata — all of
it, not only what was scanned) and looks for any protected original value: case-insensitive, any
whitespace run, on word boundaries. Returns where it found one (JSON paths), never the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sanitizers.pseudonymize import value_pattern

# Enumerated protocol fields; a value could only match them by coincidence ("user", "assistant").
_STRUCTURAL_KEYS = frozenset({"role", "type", "object", "finish_reason", "detail", "format"})


def iter_strings(node: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _STRUCTURAL_KEYS and isinstance(value, str):
                continue
            yield from iter_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_strings(value, f"{path}[{index}]")


def find_leaks(body: Any, protected: Iterable[str]) -> list[str]:
    """JSON paths of the strings in `body` that still contain a protected value."""
    pattern = value_pattern(protected)
    if pattern is None:
        return []
    return [path for path, text in iter_strings(body) if pattern.search(text)]
