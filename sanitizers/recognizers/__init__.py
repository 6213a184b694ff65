"""The fast pattern tier: Presidio's pattern recognizers, ~12× faster, with the same findings.

    tier = PatternTier(languages=("en", "de"), custom=(CustomSpec(...),), allow_list=(), entities=None)
    tier.analyze(text) -> list[Detection]

Modules: `tier` (the engine and Presidio's overlap rules), `shape` (what a regex's matches must
hold, read from its parse tree; trigger atoms in `shape_triggers`) and `patterns` (running each regex
only where it can match), `phone` (libphonenumber's matcher walk shared across regions; its
candidates in `phone_candidates`, its per-region rule-outs in `phone_regions`), `context` (context
words without spaCy), `deny` (Aho-Corasick deny lists), `validators`, `languages` (per-language
recognizers, context words, and `LANGUAGE_COVERAGE`: language → the entity types it enables, for the
README).
"""

from __future__ import annotations

from typing import Any

from sanitizers.recognizers.tier import CustomSpec, PatternTier, remove_duplicates

__all__ = ["LANGUAGE_COVERAGE", "CustomSpec", "PatternTier", "remove_duplicates"]


def __getattr__(name: str) -> Any:
    # Computed on first use: it instantiates every language's recognizers (~0.1 s).
    if name == "LANGUAGE_COVERAGE":
        from sanitizers.recognizers.languages import coverage

        return coverage()
    raise AttributeError(name)
