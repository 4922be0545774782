"""What a command-line agent keeps between turns, and what it runs with.

* **The run's home.** Every command agent gets a home directory of its own run, mounted writable
  at AGENT_HOME (and HOME points there): Claude Code keeps its sessions under ~/.claude, Codex
  under ~/.codex, aider its chat history and mini-swe-agent its trajectory where the agent
  definition says. It is kept per run, outside the workspace (nothing of it reaches the
  candidate), and outlives a rebuilt workspace, so a follow-up days later still finds the
  session.
* **The tools.** The agent tools directory (scripts/agent-clis.sh builds it: Claude Code, Codex
  CLI, aider, mini-swe-agent) is mounted read-only at AGENT_TOOLS_PATH with its bin/ first on
  PATH, so definitions name the CLIs by their plain names.
* **Follow-ups.** A definition with ``resume_argv`` continues the CLI's own session on a
  follow-up turn: ``{session_id}`` in it is replaced by the session the previous turn's
  trajectory named (``claude --resume``, ``codex exec resume``). A ``resume_argv`` without the
  placeholder is used whenever there was a previous turn (aider's ``--restore-chat-history``).
  Without one, or when the session is unknown, the follow-up prompt carries the transcript.
* **The trajectory file**, for CLIs that write one (``trajectory_file``, a path under the home):
  the part written during the turn is what gets parsed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marlin.sandbox import SANDBOX_PATH, Mount

DEFINITIONS_FILE = Path(__file__).with_name("cli_definitions.json")
AGENT_HOME = "/home/agent"
AGENT_TOOLS_PATH = "/opt/agent-tools"
SESSION_PLACEHOLDER = "{session_id}"


def home_dir(root: Path, run_id: int) -> Path:
    """The run's agent home on the host, under `root` (the workspaces directory)."""
    return Path(root) / "agent-homes" / f"run-{int(run_id)}"


def ensure_home(root: Path, run_id: int) -> Path:
    home = home_dir(root, run_id)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def remove_home(root: Path, run_id: int) -> None:
    shutil.rmtree(home_dir(root, run_id), ignore_errors=True)


def cli_mounts(home: Path, tools_dir: Path | None) -> list[Mount]:
    mounts = [Mount(source=home, target=AGENT_HOME, writable=True)]
    if tools_dir is not None and Path(tools_dir).is_dir():
        mounts.append(Mount(source=Path(tools_dir), target=AGENT_TOOLS_PATH, writable=False))
    return mounts


def cli_env(tools_dir: Path | None) -> dict[str, str]:
    env = {"HOME": AGENT_HOME}
    if tools_dir is not None and Path(tools_dir).is_dir():
        env["PATH"] = f"{AGENT_TOOLS_PATH}/bin:{SANDBOX_PATH}"
    return env


@dataclass(frozen=True)
class TurnCommand:
    argv: list[str] | str
    resumed: bool  # the CLI continues its own session: the prompt goes without the transcript


def _replace(argv: list[str] | str, session_id: str) -> list[str] | str:
    if isinstance(argv, str):
        # A bash command line: the id is quoted as one word whatever it holds.
        quoted = "'" + session_id.replace("'", "'\\''") + "'"
        return argv.replace(SESSION_PLACEHOLDER, quoted)
    return [arg.replace(SESSION_PLACEHOLDER, session_id) for arg in argv]


def _mentions_session(argv: list[str] | str) -> bool:
    parts = [argv] if isinstance(argv, str) else argv
    return any(SESSION_PLACEHOLDER in part for part in parts)


def turn_command(
    argv: list[str] | str,
    resume_argv: list[str] | str | None,
    *,
    earlier_turn: bool,
    session_id: str | None,
) -> TurnCommand:
    """The command for this turn: the definition's argv, or its resume_argv on a follow-up that
    can continue the CLI's own session."""
    if not earlier_turn or not resume_argv:
        return TurnCommand(argv, resumed=False)
    if _mentions_session(resume_argv):
        if not session_id:
            return TurnCommand(argv, resumed=False)
        return TurnCommand(_replace(resume_argv, session_id), resumed=True)
    return TurnCommand(resume_argv, resumed=True)


def trajectory_path(home: Path, relative: str) -> Path | None:
    """The trajectory file's host path, or None when it would leave the home."""
    if not relative:
        return None
    relative = relative.removeprefix(AGENT_HOME + "/").removeprefix("~/")
    candidate = (Path(home) / relative).resolve()
    root = Path(home).resolve()
    return candidate if candidate.is_relative_to(root) and candidate != root else None


def read_text(path: Path | None, limit: int = 20_000_000) -> str | None:
    """A file the agent wrote, read without following a link it may have planted."""
    if path is None or path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")


def written_during(before: str | None, after: str | None) -> str | None:
    """The part of a trajectory file the turn wrote: what follows the old text when the CLI
    appended to it (aider's history), else all of it (a file written anew, mini-swe-agent's)."""
    if after is None:
        return None
    if before and after.startswith(before):
        return after[len(before) :]
    return after


def shipped_definitions() -> dict[str, dict[str, Any]]:
    """The ready-made definitions (name -> description and settings), tested in
    tests/agents/test_cli_agents.py and listed in docs/agents.md."""
    definitions: dict[str, dict[str, Any]] = json.loads(DEFINITIONS_FILE.read_text())
    return definitions
