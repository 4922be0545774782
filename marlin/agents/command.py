"""Command-line agents (Claude Code ``claude -p``, Codex CLI, aider, a script) run in the sandbox.

The agent works on the workspace at /workspace. It gets the prompt on stdin, or in a file at
/workspace/.marlin/prompt.md (``{prompt_file}`` in the command names it); that file is removed
after the run so it never reaches the candidate's diff. Its output is the trajectory. A follow-up
turn gets the earlier transcript in front of the new prompt.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from marlin.agents.tools import SANDBOX_ENV, ToolError, workspace_file
from marlin.sandbox import Limits, Mount, run
from marlin.sandbox.egress import Connection, Egress, ModelUsage
from marlin.sandbox.workspace import sandbox_view

PROMPT_DIR = ".marlin"
PROMPT_FILE = f"{PROMPT_DIR}/prompt.md"
PROMPT_PATH_IN_SANDBOX = f"/workspace/{PROMPT_FILE}"
# Keys never reach command-line agents, not even as variables: in proxy mode the egress proxy's
# credential endpoint adds them on the host (marlin.sandbox.egress).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class CommandAgentSpec:
    argv: list[str] | str  # a list of arguments, or a bash command line; {prompt_file} is replaced
    prompt_via: Literal["stdin", "file"] = "stdin"
    network: str = "none"  # a sandbox network mode: none, proxy or host
    timeout: float = 1800.0
    env: dict[str, str] = field(default_factory=dict)
    egress: Egress | None = None  # proxy mode: the allow list, model APIs and cost limit

    def __post_init__(self) -> None:
        if self.prompt_via not in ("stdin", "file"):
            raise ValueError(f"prompt_via must be 'stdin' or 'file', got {self.prompt_via!r}.")
        if not self.argv:
            raise ValueError("The command-line agent needs a command (argv).")
        secret_like = sorted(name for name in self.env if _SECRET_NAME.search(name))
        if secret_like:
            raise ValueError(
                f"Environment variables {secret_like} look like secrets; they must not enter the "
                "sandbox. Keep only non-secret settings in the agent's env."
            )


@dataclass(frozen=True)
class CommandAgentResult:
    returncode: int
    output: str  # stdout then stderr: the trajectory
    timed_out: bool
    killed_reason: str | None = None  # e.g. "cost-limit" when the proxy stopped it
    stdout: str = ""  # the two streams apart, for trajectory parsers (output joins them)
    stderr: str = ""
    network_log: tuple[Connection, ...] = ()
    network_log_dropped: int = 0
    model_usage: ModelUsage | None = None


def full_prompt(prompt: str, transcript: str = "") -> str:
    if not transcript.strip():
        return prompt
    return (
        "Earlier in this session (your previous work on this task):\n\n"
        f"{transcript.rstrip()}\n\n---\n\nFollow-up request:\n\n{prompt}"
    )


def _command(spec: CommandAgentSpec) -> list[str]:
    if isinstance(spec.argv, str):
        return ["bash", "-c", spec.argv.replace("{prompt_file}", PROMPT_PATH_IN_SANDBOX)]
    return [arg.replace("{prompt_file}", PROMPT_PATH_IN_SANDBOX) for arg in spec.argv]


def run_command_agent(
    spec: CommandAgentSpec,
    workdir: Path,
    prompt: str,
    *,
    transcript: str = "",
    mounts: Sequence[Mount] = (),
    backend: str | None = None,
    limits: Limits | None = None,
) -> CommandAgentResult:
    text = full_prompt(prompt, transcript)
    prompt_dir = Path(workdir) / PROMPT_DIR
    if spec.prompt_via == "file":
        try:
            target = workspace_file(Path(workdir), PROMPT_FILE)
        except ToolError as exc:
            raise ValueError(f"Cannot place the prompt file in the workspace: {exc}") from None
        target.parent.mkdir(exist_ok=True)
        target.write_text(text, encoding="utf-8")
    # A layer over a built tree is mounted as an overlay; the prompt file written above is in
    # the layer's own directory, so the agent sees it there.
    view, git_mounts = sandbox_view(Path(workdir))
    try:
        result = run(
            _command(spec),
            workdir=view,
            env={**SANDBOX_ENV, **spec.env},
            stdin=text if spec.prompt_via == "stdin" else None,
            timeout=spec.timeout,
            limits=limits,
            network=spec.network,
            egress=spec.egress,
            mounts=(*mounts, *git_mounts),
            backend=backend,
        )
    finally:
        if prompt_dir.is_dir() and not prompt_dir.is_symlink():
            shutil.rmtree(prompt_dir)
    output = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
    return CommandAgentResult(
        result.returncode,
        output,
        result.timed_out,
        killed_reason=result.killed_reason,
        stdout=result.stdout,
        stderr=result.stderr,
        network_log=result.network_log,
        network_log_dropped=result.network_log_dropped,
        model_usage=result.model_usage,
    )
