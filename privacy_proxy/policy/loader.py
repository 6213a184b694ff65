"""Read a policy file: safe YAML → strict models, with errors located by file, line and field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.model import Policy

Location = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    sha256: str


def _node_locations(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], Location]) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _node_locations(value_node, path + (key,), out)
            # A key's own position is the most useful place to point at for "extra field" errors.
            out[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_locations(item, path + (index,), out)


def _locate(locations: dict[tuple[Any, ...], Location], loc: tuple[Any, ...]) -> Location | None:
    for depth in range(len(loc), -1, -1):
        if loc[:depth] in locations:
            return locations[loc[:depth]]
    return None


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = []
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else ("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse policy YAML text; raise ConfigError naming the source, line and field of the first problems."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1:1: a policy is a YAML mapping (name:, rules:, …)")
    locations: dict[tuple[Any, ...], Location] = {}
    if root is not None:
        _node_locations(root, (), locations)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
            line, column = _locate(locations, loc) or (1, 1)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling; see the configuration reference in README.md)"
            lines.append(f"{source}:{line}:{column}: {_field_name(loc)}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_policy(path: str | Path) -> LoadedPolicy:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read policy file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: policy file is not UTF-8") from None
    policy = parse_policy(text, str(path))
    return LoadedPolicy(policy=policy, path=path, sha256=hashlib.sha256(raw).hexdigest())
