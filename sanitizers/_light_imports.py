"""Import spaCy and Presidio without dragging torch and transformers in.

Both probe for torch/transformers at import time (`thinc.compat`, Presidio's Hugging Face engine) and
merely record their absence when the import fails. Where the ML extra is installed the probe costs
~4 s and ~300 MB before the first request, for code paths the proxy never uses. Hiding the two
packages while spaCy and Presidio are first imported keeps the proxy's start-up and memory the same
with or without the extra; torch and transformers import normally afterwards (for `transformers:`
NER models and the local SLM).
"""

from __future__ import annotations

import importlib
import sys

_HIDDEN = ("torch", "transformers")


def import_nlp_libraries() -> None:
    if "spacy" in sys.modules and "presidio_analyzer" in sys.modules:
        return
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        importlib.import_module("spacy")
        importlib.import_module("presidio_analyzer")
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
