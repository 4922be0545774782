"""Reading the container files as docker and compose read them: the Dockerfile's instructions
by stage, compose.yaml with its anchors merged, the lines of .dockerignore."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str  # everything after the keyword, continuation lines joined

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD, else the shell words."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + len("CMD") :].strip()
        if text.startswith("["):
            return list(json.loads(text))
        return shlex.split(text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV KEY=VALUE pairs (the only form the Dockerfile uses)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                values[key] = value
        return values


def instructions(text: str) -> list[Instruction]:
    """Instructions in order; comments (parser directives too) dropped, `\\` lines joined."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is skipped by docker too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    return found


def stages(text: str | None = None) -> list[Stage]:
    """The build stages; ARGs before the first FROM are left out (they only feed FROM lines)."""
    result: list[Stage] = []
    for instruction in instructions(DOCKERFILE.read_text() if text is None else text):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def apt_packages(stage: Stage) -> set[str]:
    """Package names given to `apt-get install` in the stage's RUN instructions."""
    packages: set[str] = set()
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run.arguments):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages |= {w for w in words[2:] if not w.startswith("-")}
    return packages


def compose() -> dict[str, Any]:
    """compose.yaml as compose sees it: YAML merge keys (`<<: *anchor`) applied."""
    return dict(yaml.safe_load(COMPOSE.read_text()))


def dockerignore_allowed() -> set[str]:
    """The paths an allow-list .dockerignore (`*`, then `!path` lines) lets into the context."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore must start by ignoring everything"
    return {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
