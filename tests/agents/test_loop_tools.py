"""The file tools and the Environment's guards, on a real git repository and the real sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from marlin.agents.providers import ToolCall
from marlin.agents.tools import SandboxEnvironment, Submitted, ToolError, execute_tool


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(id="c1", name=name, arguments=dict(arguments))


def test_view_file_shows_numbered_lines_in_a_range(calc_repo: Path) -> None:
    env = SandboxEnvironment(calc_repo)
    assert (
        execute_tool(env, call("view_file", path="calc.py", start_line=2, end_line=2))
        == "2      return a - b"
    )


def test_edit_file_needs_exactly_one_match(calc_repo: Path) -> None:
    env = SandboxEnvironment(calc_repo)
    with pytest.raises(ToolError, match="was not found in calc.py"):
        execute_tool(env, call("edit_file", path="calc.py", old_str="a * b", new_str="x"))
    with pytest.raises(ToolError, match="occurs 3 times in test_calc.py; include more context"):
        execute_tool(env, call("edit_file", path="test_calc.py", old_str="add", new_str="x"))
    assert (calc_repo / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "is absolute"),
        ("../outside.txt", "contains '..'"),
        (".git/hooks/pre-commit", "inside .git"),
    ],
)
def test_it_rejects_paths_that_leave_the_workspace(
    calc_repo: Path, path: str, message: str
) -> None:
    env = SandboxEnvironment(calc_repo)
    with pytest.raises(ToolError, match=message):
        execute_tool(env, call("write_file", path=path, content="x"))
    assert not (calc_repo.parent / "outside.txt").exists()


def test_it_refuses_symlinks_planted_by_the_agent(calc_repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    env = SandboxEnvironment(calc_repo)
    # The agent can make links from inside the sandbox; the host-side tools must not follow them.
    result = env.execute(
        "ln -s /etc/hostname link.txt && mkdir -p d && ln -s " + str(tmp_path) + " d/out",
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    os.symlink(secret, calc_repo / "host_link.txt")
    for path in ("link.txt", "host_link.txt"):
        with pytest.raises(ToolError, match="symbolic link"):
            execute_tool(env, call("view_file", path=path))
        with pytest.raises(ToolError, match="symbolic link"):
            execute_tool(env, call("write_file", path=path, content="pwned"))
    with pytest.raises(ToolError, match="outside the workspace"):
        execute_tool(env, call("write_file", path="d/out/secret.txt", content="pwned"))
    assert secret.read_text() == "host secret"


def test_bash_reports_exit_codes_and_timeouts(calc_repo: Path) -> None:
    env = SandboxEnvironment(calc_repo)
    assert execute_tool(env, call("bash", command="echo out; echo err >&2; exit 3")) == (
        "exit code: 3\nstdout:\nout\n\nstderr:\nerr\n"
    )
    slow = execute_tool(env, call("bash", command="sleep 20"), timeout=0.5)
    assert "stopped after 0.5 seconds" in slow


def test_finish_submits_with_its_summary(calc_repo: Path) -> None:
    with pytest.raises(Submitted, match="all done"):
        execute_tool(SandboxEnvironment(calc_repo), call("finish", summary="all done"))
