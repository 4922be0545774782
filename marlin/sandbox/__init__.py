"""Run untrusted commands (agents, checks, setup scripts) under isolation and limits.

Plain Python, no Django. See docs/sandbox.md for the threat model.
"""

from marlin.sandbox.core import (
    BACKENDS,
    NETWORK_MODES,
    SANDBOX_PATH,
    TOOLS_PATH,
    WORKSPACE_PATH,
    EgressFailed,
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
    "NETWORK_MODES",
    "SANDBOX_PATH",
    "TOOLS_PATH",
    "WORKSPACE_PATH",
    "EgressFailed",
    "ExecResult",
    "Limits",
    "Mount",
    "Overlay",
    "SandboxError",
    "SandboxUnavailable",
    "run",
]
