"""Run untrusted commands (agents, checks, setup scripts) under isolation and limits.

Plain Python, no Django. See docs/sandbox.md for the threat model.
"""

from marlin.sandbox.core import (
    BACKENDS,
    SANDBOX_PATH,
    TOOLS_PATH,
    WORKSPACE_PATH,
    ExecResult,
    Limits,
    Mount,
    Overlay,
    SandboxError,
    SandboxUnavailable,
    run,
)

__all__ = [
    "BACKENDS",
    "SANDBOX_PATH",
    "TOOLS_PATH",
    "WORKSPACE_PATH",
    "ExecResult",
    "Limits",
    "Mount",
    "Overlay",
    "SandboxError",
    "SandboxUnavailable",
    "run",
]
