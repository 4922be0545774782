"""The tools venv (pytest, ruff, bandit) that checks use inside the sandbox, at TOOLS_PATH.

It is built from Debian's /usr/bin/python3 because the sandbox binds /usr and nothing else of
the host: a venv over a pyenv or uv interpreter in /root would point at a python that does not
exist inside. Console scripts get `#!/opt/marlin-tools/bin/python` so they run where the venv is
mounted, not where it was built.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from marlin.sandbox.core import TOOLS_PATH, Mount, SandboxUnavailable

SYSTEM_PYTHON = "/usr/bin/python3"
TOOLS_REQUIREMENTS = ("pytest>=8.3,<10", "ruff>=0.9", "bandit>=1.8,<2")
_READY_MARKER = ".marlin-tools-ready"
_INSTALL_TIMEOUT = 900


def ensure_tools(root: Path) -> Path:
    """Build `root/tools` once (idempotent, safe across processes); return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tools = root / "tools"
    wanted = "\n".join(TOOLS_REQUIREMENTS) + "\n"
    if _is_ready(tools, wanted):
        return tools
    with open(root / "tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have finished the build while this one waited for the lock.
        if _is_ready(tools, wanted):
            return tools
        partial = root / "tools.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _build(partial)
        (partial / _READY_MARKER).write_text(wanted)
        shutil.rmtree(tools, ignore_errors=True)
        os.rename(partial, tools)
    return tools


def tools_mount(root: Path) -> Mount:
    """The tools venv under `root`, read-only at TOOLS_PATH (built first if needed)."""
    return Mount(source=ensure_tools(root), target=TOOLS_PATH, writable=False)


def _is_ready(tools: Path, wanted: str) -> bool:
    try:
        return (tools / _READY_MARKER).read_text() == wanted
    except OSError:
        return False


def _build(target: Path) -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise SandboxUnavailable(
            f"{SYSTEM_PYTHON} is missing; the tools venv needs the distribution's python "
            "(apt-get install python3 python3-venv)"
        )
    _call(
        [SYSTEM_PYTHON, "-m", "venv", str(target)],
        "create the tools venv (is python3-venv installed?)",
    )
    _call(
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            *TOOLS_REQUIREMENTS,
        ],
        "install the tools (pytest, ruff, bandit) with pip",
    )
    _point_scripts_at_mount(target)


def _call(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"cannot {what}: {exc}") from exc
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"cannot {what}: {' '.join(argv)} exited {done.returncode}:\n"
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )


def _point_scripts_at_mount(venv: Path) -> None:
    interpreter = f"#!{TOOLS_PATH}/bin/python"
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as handle:
            head = handle.read(2)
        if head != b"#!":
            continue  # a binary (ruff) or something else that needs no interpreter
        lines = script.read_text().split("\n", 1)
        if "python" in lines[0]:
            script.write_text(interpreter + "\n" + (lines[1] if len(lines) > 1 else ""))
