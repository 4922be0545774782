"""The tools an API-driven agent may call, and the Environment they act on.

Paths the model gives are relative to the workspace. They are checked here (a clear error for
the model) and again by the Environment (the real guard), which refuses symlinks and anything
that resolves outside the workspace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from marlin.agents.providers import ToolCall, ToolSpec
from marlin.sandbox.core import Limits, Mount, Overlay, run
from marlin.sandbox.workspace import sandbox_view

DEFAULT_COMMAND_TIMEOUT = 120.0
# What a tool returns to the model; long outputs waste context and money.
DEFAULT_OUTPUT_CAP = 20_000
# Only these reach the sandbox (which sets PATH, HOME and LANG itself): the worker's own
# environment, API keys included, never does.
SANDBOX_ENV = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", "PYTHONDONTWRITEBYTECODE": "1"}


class ExecResultLike(Protocol):
    """What a command's result must offer the tools (``marlin.sandbox.ExecResult`` does)."""

    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def truncated(self) -> bool: ...


class Environment(Protocol):
    def execute(self, command: str, *, timeout: float) -> ExecResultLike: ...
    def read_file(self, path: str) -> str: ...
    def write_file(self, path: str, content: str) -> None: ...


class ToolError(Exception):
    """The call was wrong (bad path, missing argument, no match); the message goes to the model."""


class Submitted(Exception):
    """The agent called ``finish``; the message is its summary."""


def check_relative_path(path: object) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ToolError("'path' must be a non-empty string relative to the workspace.")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise ToolError(f"Path {path!r} is absolute; give a path relative to the workspace root.")
    if ".." in pure.parts:
        raise ToolError(f"Path {path!r} contains '..'; stay inside the workspace.")
    if ".git" in pure.parts:
        # Writing into .git (hooks, config) would run code on the host at the next git command.
        raise ToolError(f"Path {path!r} is inside .git, which the tools do not touch.")
    return path


def workspace_file(workdir: Path, path: str) -> Path:
    """The host path for ``path`` inside ``workdir``; refuses symlinks and escapes."""
    check_relative_path(path)
    root = workdir.resolve()
    target = root / path
    if target.is_symlink():
        raise ToolError(f"{path} is a symbolic link; the file tools do not follow links.")
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise ToolError(f"{path} resolves outside the workspace.")
    return resolved


@dataclass
class SandboxEnvironment:
    """Runs commands with ``marlin.sandbox.run`` (workdir at /workspace) and edits files on the
    host."""

    workdir: Path
    mounts: Sequence[Mount] = ()
    limits: Limits | None = None
    network: str = "none"  # a sandbox network mode: none, proxy or host
    backend: str | None = None

    def execute(self, command: str, *, timeout: float) -> ExecResultLike:
        view, git_mounts = sandbox_view(self.workdir)
        return run(
            ["bash", "-c", command],
            workdir=view,
            env=dict(SANDBOX_ENV),
            timeout=timeout,
            limits=self.limits,
            network=self.network,
            mounts=(*self.mounts, *git_mounts),
            backend=self.backend,
        )

    def read_file(self, path: str) -> str:
        if self._layered():
            return self._in_sandbox(path, _READ_SCRIPT)
        target = workspace_file(self.workdir, path)
        if not target.is_file():
            raise ToolError(f"{path} does not exist or is not a regular file.")
        return target.read_text(encoding="utf-8", errors="replace")

    def write_file(self, path: str, content: str) -> None:
        if self._layered():
            self._in_sandbox(path, _WRITE_SCRIPT, stdin=content)
            return
        target = workspace_file(self.workdir, path)
        workspace_file(self.workdir, str(PurePosixPath(path).parent) if "/" in path else ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a link planted between the check and the open is refused, not followed.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)

    def _layered(self) -> bool:
        return isinstance(sandbox_view(self.workdir)[0], Overlay)

    def _in_sandbox(self, path: str, script: str, *, stdin: str | None = None) -> str:
        """A file tool on a layer over a built tree: the merged tree exists only in the
        sandbox, so the file is read or written there, with the same refusals as on the host."""
        check_relative_path(path)
        view, git_mounts = sandbox_view(self.workdir)
        result = run(
            ["bash", "-c", script, "file-tool", path],
            workdir=view,
            env=dict(SANDBOX_ENV),
            stdin=stdin,
            timeout=FILE_TOOL_TIMEOUT_SECONDS,
            limits=Limits(max_output_bytes=MAX_FILE_TOOL_BYTES),
            mounts=(*self.mounts, *git_mounts),
            backend=self.backend,
        )
        if result.returncode in _FILE_TOOL_ERRORS:
            raise ToolError(_FILE_TOOL_ERRORS[result.returncode].format(path=path))
        if not result.ok or result.truncated:
            raise ToolError(
                f"{path}: the file tool failed ({result.stderr.strip()[-300:] or 'too large'})"
            )
        return result.stdout


FILE_TOOL_TIMEOUT_SECONDS = 60.0
MAX_FILE_TOOL_BYTES = 16 * 1024 * 1024
# Exit codes of the scripts below, and what the agent is told.
_FILE_TOOL_ERRORS = {
    3: "{path} is a symbolic link; the file tools do not follow links.",
    4: "{path} does not exist or is not a regular file.",
    5: "{path} resolves outside the workspace.",
}
_INSIDE = (
    'p=$1; [ -L "$p" ] && exit 3; '
    'case "$(realpath -m -- "$p")" in /workspace/*) ;; *) exit 5 ;; esac; '
)
_READ_SCRIPT = _INSIDE + '[ -f "$p" ] || exit 4; cat -- "$p"'
_WRITE_SCRIPT = _INSIDE + 'mkdir -p -- "$(dirname -- "$p")" && cat > "$p"'


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


_PATH = {"type": "string", "description": "Path relative to the repository root."}
TOOL_SPECS: list[ToolSpec] = [
    _spec(
        "bash",
        "Run a bash command in the repository root (no network). Returns exit code and output.",
        {"command": {"type": "string"}},
        ["command"],
    ),
    _spec(
        "view_file",
        "Show a file with line numbers, optionally only lines start_line..end_line.",
        {"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
        ["path"],
    ),
    _spec(
        "edit_file",
        "Replace the text old_str, which must occur exactly once in the file, with new_str.",
        {"path": _PATH, "old_str": {"type": "string"}, "new_str": {"type": "string"}},
        ["path", "old_str", "new_str"],
    ),
    _spec(
        "write_file",
        "Create or overwrite a file with the given content.",
        {"path": _PATH, "content": {"type": "string"}},
        ["path", "content"],
    ),
    _spec(
        "finish",
        "Call when the task is done, with a short summary of the change.",
        {"summary": {"type": "string"}},
        ["summary"],
    ),
]
_REQUIRED = {spec["name"]: spec["parameters"]["required"] for spec in TOOL_SPECS}


def cap_output(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    head = cap // 2
    tail = cap - head
    return f"{text[:head]}\n[... {len(text) - cap} characters cut ...]\n{text[-tail:]}"


def execute_tool(
    env: Environment,
    call: ToolCall,
    *,
    timeout: float = DEFAULT_COMMAND_TIMEOUT,
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> str:
    """Run one tool call and return what the model should read. Raises ToolError or Submitted."""
    if call.name not in _REQUIRED:
        raise ToolError(f"Unknown tool {call.name!r}; available tools: {', '.join(_REQUIRED)}.")
    args = call.arguments
    if not isinstance(args, dict):
        raise ToolError(f"The arguments of {call.name} are not a JSON object: {str(args)[:200]!r}.")
    missing = [name for name in _REQUIRED[call.name] if name not in args]
    if missing:
        raise ToolError(f"{call.name} is missing required argument(s): {', '.join(missing)}.")
    if call.name == "bash":
        return cap_output(_bash(env, _str(args, "command"), timeout), output_cap)
    if call.name == "view_file":
        return cap_output(_view(env, args), output_cap)
    if call.name == "edit_file":
        return _edit(
            env, check_relative_path(args["path"]), _str(args, "old_str"), _str(args, "new_str")
        )
    if call.name == "write_file":
        path = check_relative_path(args["path"])
        content = _str(args, "content")
        env.write_file(path, content)
        return f"Wrote {len(content)} characters to {path}."
    raise Submitted(str(args["summary"]))


def _str(args: dict[str, Any], name: str) -> str:
    value = args[name]
    if not isinstance(value, str):
        raise ToolError(f"Argument {name!r} must be a string, got {type(value).__name__}.")
    return value


def _bash(env: Environment, command: str, timeout: float) -> str:
    result = env.execute(command, timeout=timeout)
    parts = [f"exit code: {result.returncode}"]
    if result.timed_out:
        parts.append(f"(the command was stopped after {timeout:g} seconds)")
    if result.truncated:
        parts.append("(output was truncated by the sandbox)")
    if result.stdout:
        parts.append(f"stdout:\n{result.stdout}")
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr}")
    return "\n".join(parts)


def _view(env: Environment, args: dict[str, Any]) -> str:
    lines = env.read_file(check_relative_path(args["path"])).splitlines()
    start, end = args.get("start_line", 1), args.get("end_line", len(lines))
    if not isinstance(start, int) or not isinstance(end, int) or start < 1 or end < start:
        raise ToolError(
            "start_line and end_line must be integers with 1 <= start_line <= end_line."
        )
    width = len(str(min(end, len(lines)) or 1))
    return "\n".join(
        f"{n:>{width}}  {lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1)
    )


def _edit(env: Environment, path: str, old: str, new: str) -> str:
    if not old:
        raise ToolError("old_str is empty; to create or overwrite a file use write_file.")
    text = env.read_file(path)
    count = text.count(old)
    if count == 0:
        raise ToolError(
            f"old_str was not found in {path}; view the file and copy the text exactly."
        )
    if count > 1:
        raise ToolError(
            f"old_str occurs {count} times in {path}; include more context so it is unique."
        )
    env.write_file(path, text.replace(old, new, 1))
    return f"Edited {path}."
