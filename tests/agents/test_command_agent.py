"""Command-line agents in the real sandbox, played by a small script that edits the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlin.agents.command import CommandAgentSpec, run_command_agent
from tests.agents.conftest import git

# A stand-in for `claude -p` or aider: reads the prompt, applies "REPLACE <old> WITH <new>"
# lines to calc.py, and reports what it saw.
SCRIPTED_AGENT = r"""
import re, sys
prompt = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
print("earlier transcript seen:", "Earlier in this session" in prompt)
source = open("calc.py").read()
for old, new in re.findall(r"REPLACE (.+?) WITH (.+)", prompt.split("Follow-up request:")[-1]):
    source = source.replace(old, new)
    print(f"edited calc.py: {old} -> {new}")
open("calc.py", "w").write(source)
"""


def test_it_runs_an_agent_that_reads_the_prompt_on_stdin(calc_repo: Path) -> None:
    spec = CommandAgentSpec(argv=["python3", "-c", SCRIPTED_AGENT], timeout=30)
    result = run_command_agent(spec, calc_repo, "REPLACE a - b WITH a + b")
    assert result.returncode == 0 and not result.timed_out
    assert "edited calc.py: a - b -> a + b" in result.output
    assert "earlier transcript seen: False" in result.output
    assert "+    return a + b" in git(calc_repo, "diff")


def test_a_prompt_file_is_given_to_the_agent_and_kept_out_of_the_diff(calc_repo: Path) -> None:
    spec = CommandAgentSpec(
        argv=f"python3 -c '{SCRIPTED_AGENT}' {{prompt_file}}", prompt_via="file", timeout=30
    )
    result = run_command_agent(spec, calc_repo, "REPLACE a - b WITH a + b")
    assert "edited calc.py" in result.output, result.output
    assert git(calc_repo, "status", "--short", "--untracked-files=all") == " M calc.py\n"


def test_a_follow_up_turn_gets_the_earlier_transcript_and_builds_on_the_edit(
    calc_repo: Path,
) -> None:
    spec = CommandAgentSpec(argv=["python3", "-c", SCRIPTED_AGENT], timeout=30)
    first = run_command_agent(spec, calc_repo, "REPLACE a - b WITH a + b")
    second = run_command_agent(spec, calc_repo, "REPLACE a + b WITH b + a", transcript=first.output)
    assert "earlier transcript seen: True" in second.output
    assert "edited calc.py: a + b -> b + a" in second.output
    assert "+    return b + a" in git(calc_repo, "diff")


def test_an_agent_that_runs_too_long_is_stopped(calc_repo: Path) -> None:
    spec = CommandAgentSpec(argv=["sleep", "30"], timeout=1)
    result = run_command_agent(spec, calc_repo, "anything")
    assert result.timed_out


def test_the_sandbox_has_no_network_by_default(calc_repo: Path, model_server_factory) -> None:
    server = model_server_factory([])
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('{server.openai_base_url}/chat/completions', timeout=3)"
    )
    result = run_command_agent(
        CommandAgentSpec(argv=["python3", "-c", probe], timeout=30), calc_repo, ""
    )
    assert result.returncode != 0
    assert server.requests == []


def test_secret_looking_variables_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\['OPENAI_API_KEY'\] look like secrets"):
        CommandAgentSpec(argv=["claude", "-p"], env={"OPENAI_API_KEY": "sk-x", "LANG": "C"})
    with pytest.raises(ValueError, match="prompt_via must be"):
        CommandAgentSpec(argv=["x"], prompt_via="argv")  # type: ignore[arg-type]
