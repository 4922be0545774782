"""Identity fingerprints on real agent patches and on patches built in real git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from marlin.agents.fingerprints import find_fingerprints, scrub
from tests.agents.conftest import git

PREDICTIONS = Path("/work/shared/realdata/swebench_lite/predictions")


def load_predictions() -> list[dict[str, str]]:
    records: list[dict[str, str]] = json.loads(
        (PREDICTIONS / "autocoderover-run2.json").read_text()
    )
    for name in ("coder-2024-06-04.jsonl", "swe-agent-cost2-run2.jsonl"):
        records += [
            json.loads(line) for line in (PREDICTIONS / name).read_text().splitlines() if line
        ]
    return records


@pytest.mark.skipif(
    not PREDICTIONS.is_dir(), reason="the shared SWE-bench Lite predictions are not on this machine"
)
def test_real_swebench_patches_carry_no_fingerprints_but_their_model_names_do() -> None:
    records = load_predictions()
    assert len(records) > 800
    flagged = [r["instance_id"] for r in records if find_fingerprints(r.get("model_patch") or "")]
    # 806 real patches from AutoCodeRover, CodeR and SWE-agent: none signs its work, and the
    # database cursors in them ("cursor.execute") are code, not the Cursor editor.
    assert flagged == []
    assert sum("cursor" in (r.get("model_patch") or "").lower() for r in records) >= 4
    names = {r["model_name_or_path"] for r in records}
    assert {n for n in names if find_fingerprints(n)} == {n for n in names if "gpt" in n.lower()}


def test_it_finds_signatures_and_mentions_with_their_lines() -> None:
    text = (
        "Fix the parser\n\n"
        "🤖 Generated with [Claude Code](https://claude.com/claude-code)\n\n"
        "Co-Authored-By: Claude <noreply@anthropic.com>\n"
        "Asked GPT-4o and Gemini; see CLAUDE.md and .claude/settings.json\n"
    )
    found = [(f.kind, f.match, f.line, f.severity) for f in find_fingerprints(text)]
    assert (
        "banner",
        "🤖 Generated with [Claude Code](https://claude.com/claude-code)",
        3,
        "signature",
    ) in found
    assert ("trailer", "Co-Authored-By: Claude <noreply@anthropic.com>", 5, "signature") in found
    assert ("model", "GPT-4o", 6, "mention") in found and ("model", "Gemini", 6, "mention") in found
    assert ("agent_file", "CLAUDE.md", 6, "signature") in found
    assert ("agent_file", ".claude", 6, "signature") in found
    assert scrub(text) == (
        "Fix the parser\n\n\n"
        "Asked [model] and [model]; see AGENT_NOTES.md and .agent/settings.json\n"
    )


def test_vendor_names_used_as_code_are_not_fingerprints() -> None:
    code = (
        "import openai\nfrom anthropic import Anthropic\nclient = openai.OpenAI()\n"
        "cursor.execute(sql)\nopenai_client = AnthropicModel()\n"
    )
    assert find_fingerprints(code) == []
    assert [f.match for f in find_fingerprints("# Written by Claude, tuned with aider\n")] == [
        "Claude",
        "aider",
    ]


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=dave", "-c", "user.email=dave@example.com", "commit", "-qm", message)


def test_scrubbed_patches_still_apply(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    # The repository itself uses the openai SDK and mentions Claude in context lines.
    body = [f"line {i}\n" for i in range(1, 41)]
    body[2] = "import openai  # Claude wrote nothing here\n"
    (repo / "app.py").write_text("".join(body))
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "base")
    changed = list(body)
    changed[1] = (
        "line 2\n# Fixed by Claude (claude-3-5-sonnet)\n"
        "# Co-Authored-By: Claude <noreply@anthropic.com>\n"
    )
    changed[30] = "line 31 changed\n# 🤖 Generated with [Claude Code]\n"
    (repo / "app.py").write_text("".join(changed))
    (repo / "CLAUDE.md").write_text("Use pytest.\n")
    git(repo, "add", "-N", "CLAUDE.md")
    patch = git(repo, "diff")
    assert "Co-Authored-By" in patch and "diff --git a/CLAUDE.md" in patch

    cleaned = scrub(patch)
    assert find_fingerprints(cleaned) == []
    assert "import openai  # Claude wrote nothing here" in cleaned  # context is the repo's own
    assert "+# Fixed by [model] ([model])" in cleaned
    git(repo, "checkout", "-q", "--", "app.py")
    (repo / "CLAUDE.md").unlink()
    patch_file = tmp_path / "clean.patch"
    patch_file.write_text(cleaned)
    applied = subprocess.run(
        ["git", "-C", str(repo), "apply", "-v", str(patch_file)], capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stderr
    result = (repo / "app.py").read_text()
    assert "# Fixed by [model] ([model])\n" in result and "line 31 changed\nline 32\n" in result
    assert "Co-Authored-By" not in result and "Generated with" not in result
    assert (repo / "AGENT_NOTES.md").read_text() == "Use pytest.\n"
