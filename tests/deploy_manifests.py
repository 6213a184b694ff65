"""Readers for the deployment files under deploy/ (for tests/test_deploy.py): a Dockerfile parser, a systemd
unit parser, a .dockerignore matcher, and what the code reads from the environment."""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from privacy_proxy.policy.model import Policy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
EXPANSION = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")  # Kubernetes $(VAR) in env values and args


# --- Dockerfile ---------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, COPY, ...
    args: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT/CMD, or of a HEALTHCHECK's CMD."""
        text = self.args
        if self.name == "HEALTHCHECK":
            match = re.search(r"(?:^|\s)CMD\s+(\[.*\])\s*$", text)
            assert match, f"line {self.line}: HEALTHCHECK without an exec-form CMD"
            text = match.group(1)
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"line {self.line}: not exec form"
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction:
        found = self.all(name)
        assert found, f"stage {self.name}: no {name}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for item in shlex.split(instruction.args):
                key, _, value = item.partition("=")
                values[key] = value
        return values

    def arg_defaults(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ARG"):
            key, _, value = instruction.args.partition("=")
            values[key.strip()] = value.strip()
        return values


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions with line continuations joined and comments dropped; stages split at FROM."""
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    assert not pending, "a continuation runs past the end of the Dockerfile"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        name, _, args = line.partition(" ")
        instruction = Instruction(name.upper(), args.strip(), number)
        if instruction.name == "FROM":
            parts = instruction.args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), parts[0])
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        elif not stages:
            assert instruction.name == "ARG", f"line {number}: only ARG may come before FROM"
            key, _, value = instruction.args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether the build context leaves `path` out (the path or a parent matches; the last match wins)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def read_dockerignore(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- systemd --------------------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections → (key, value) in order; keys may repeat (SystemCallFilter=, Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"not a unit line: {line!r}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for k, value in sections.get(section, []) if k == key]


# --- YAML ----------------------------------------------------------------------------------------------------


def k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- the environment the code reads ---------------------------------------------------------------------------


def _env_literals(tree: ast.AST, source: str) -> set[str]:
    """Upper-case string constants of the functions (and top-level statements) that touch os.environ."""
    names: set[str] = set()
    scopes: list[ast.AST] = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    scopes += [n for n in getattr(tree, "body", []) if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                           ast.ClassDef))]
    for scope in scopes:
        segment = ast.get_source_segment(source, scope) or ""
        if "os.environ" not in segment and "getenv" not in segment:
            continue
        for node in ast.walk(scope):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                names.add(node.value)
    return names


def _policy_env_names(data: Any) -> set[str]:
    """Values of every `*_env` setting (the env var names a policy makes the code read)."""
    names: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key.endswith("_env") and isinstance(value, str) and value:
                names.add(value)
            else:
                names |= _policy_env_names(value)
    elif isinstance(data, list):
        for item in data:
            names |= _policy_env_names(item)
    return names


def env_vars_read_by_code(*policies: Policy) -> set[str]:
    """Names read directly in privacy_proxy/ and sanitizers/, plus those the given policies name."""
    names: set[str] = set()
    for package in ("privacy_proxy", "sanitizers"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            if "environ" in source or "getenv" in source:
                names |= _env_literals(ast.parse(source), source)
    for policy in policies:
        names |= _policy_env_names(policy.model_dump())
    return names


def secrets_needed(policy: Policy) -> set[str]:
    """The env vars a proxy running `policy` needs for its keys and credentials."""
    needed = {policy.audit.hmac_key_env}
    if not policy.upstream.forward_client_authorization:
        needed.add(policy.upstream.api_key_env)
    if policy.audit.checkpoint_every or policy.audit.checkpoint_interval:
        needed.add(policy.audit.signing_key_env)
    if policy.vault.backend != "memory":
        needed.add(policy.vault.key_env)
    if policy.vault.backend == "redis" and not policy.vault.redis_url:
        needed.add(policy.vault.redis_url_env)
    for optional in (policy.upstream.client_key_password_env, policy.slm.api_key_env):
        if optional:
            needed.add(optional)
    return needed
