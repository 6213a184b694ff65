"""Text-level privacy with no HTTP: detect, decide-free transforms, leak guard, restore."""

from sanitizers.types import Action, Decision, Detection, Mapping

__all__ = ["Action", "Decision", "Detection", "Mapping"]
