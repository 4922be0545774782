"""Identity fingerprints on real agent patches and on patches built in real git repositories."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from marlin.agents.fingerprints import find_fingerprints, load_vocabulary, scrub
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


# The vocabulary file, entry by entry, as written and disguised.

VOCABULARY = load_vocabulary()
NAME_EXAMPLES = [
    (entry["kind"], example) for entry in VOCABULARY["names"] for example in entry["examples"]
]
CYRILLIC = str.maketrans("aceopxyACEHKMOPTX", "асеорхуАСЕНКМОРТХ")


def disguises(name: str) -> dict[str, str]:
    """Ways to write a name that read the same to an expert and not to a plain regex."""
    return {
        "as written": name,
        "zero-width space": name[0] + "\u200b" + name[1:],
        "soft hyphen and joiner": name[0] + "\u00ad" + name[1] + "\u200d" + name[2:],
        "Cyrillic look-alikes": name.translate(CYRILLIC),
        "non-breaking hyphen and space": name.replace("-", "\u2011").replace(" ", "\u00a0"),
        "full-width": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name),
    }


def test_every_entry_has_examples_and_no_capturing_group() -> None:
    for entry in VOCABULARY["names"]:
        assert entry["kind"] in ("model", "vendor") and entry["examples"], entry
        assert re.compile(entry["pattern"]).groups == 0, entry["pattern"]  # lastgroup names it
    assert re.compile(VOCABULARY["agent_files"]["pattern"]).groups == 0


@pytest.mark.parametrize(("kind", "name"), NAME_EXAMPLES)
def test_every_name_in_the_vocabulary_is_found_and_scrubbed_however_it_is_written(
    kind: str, name: str
) -> None:
    for how, written in disguises(name).items():
        text = f"Rewritten with {written} today\n"
        found = find_fingerprints(text)
        assert found, f"{how}: {written!r} not found"
        # The finding quotes the text as written, disguise included.
        assert all(f.match in written for f in found), (how, found)
        assert found[0].kind == kind and written.startswith(found[0].match), (how, found)
        cleaned = scrub(text)
        assert find_fingerprints(cleaned) == [], (how, cleaned)
        assert written not in cleaned and cleaned.startswith("Rewritten with ["), cleaned
        assert cleaned.endswith(" today\n"), cleaned


@pytest.mark.parametrize(
    ("text", "kind", "scrubbed"),
    [
        ("Cl\u200baude wrote this", "model", "[model] wrote this"),
        ("\u0421laude wrote this", "model", "[model] wrote this"),  # Cyrillic С
        ("Tuned on GPT\u20114o.", "model", "Tuned on [model]."),  # non-breaking hyphen
        ("Planned by o3-mini.", "model", "Planned by [model]."),
        ("Reviewed by Sonnet 4.5", "model", "Reviewed by [model]"),
        ("Opus suggested it", "model", "[model] suggested it"),
        ('MODEL = "claude_sonnet_4"', "model", 'MODEL = "[model]"'),
        ("Contact: noreply@anthropic.com", "vendor", "Contact: [agent]"),
    ],
)
def test_what_the_scrubber_used_to_miss(text: str, kind: str, scrubbed: str) -> None:
    assert [f.kind for f in find_fingerprints(text)] == [kind]
    assert scrub(text) == scrubbed


@pytest.mark.parametrize("text", VOCABULARY["not_findings"]["examples"])
def test_names_used_as_code_and_look_alike_words_are_not_findings(text: str) -> None:
    assert find_fingerprints(text) == []
    patch = f"diff --git a/x.py b/x.py\n@@ -1 +1 @@\n-x = 0\n+{text}\n"
    assert find_fingerprints(patch) == []


@pytest.mark.parametrize("banner", VOCABULARY["banners"]["examples"])
def test_every_banner_is_a_signature_line(banner: str) -> None:
    for how, written in disguises(banner).items():
        found = find_fingerprints(f"Fix it\n{written}\n")
        assert [(f.kind, f.line) for f in found] == [("banner", 2)], how
        assert scrub(f"Fix it\n{written}\n") == "Fix it\n"


@pytest.mark.parametrize("name", VOCABULARY["agent_files"]["examples"])
def test_every_agent_file_is_renamed(name: str) -> None:
    found = find_fingerprints(f"see {name}")
    assert [(f.kind, f.match) for f in found][:1] == [("agent_file", name.split("/")[0])]
    assert find_fingerprints(scrub(f"see {name}")) == []


def test_a_disguised_name_in_a_patch_is_scrubbed_and_the_patch_applies(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("x = 1\n")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "base")
    (repo / "app.py").write_text(
        "x = 1\n# Written by \u0421lau\u200bde (GPT\u20114o) for noreply@anthropic.com\ny = 2\n"
    )
    patch = git(repo, "diff")
    assert {f.kind for f in find_fingerprints(patch)} == {"model", "vendor"}
    cleaned = scrub(patch)
    assert find_fingerprints(cleaned) == []
    git(repo, "checkout", "-q", "--", "app.py")
    (tmp_path / "clean.patch").write_text(cleaned)
    git(repo, "apply", str(tmp_path / "clean.patch"))
    assert (repo / "app.py").read_text() == (
        "x = 1\n# Written by [model] ([model]) for [agent]\ny = 2\n"
    )
