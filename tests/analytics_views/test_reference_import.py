"""`marlin import judgments`: external pairwise judgments as a reference leaderboard beside the
experts' one, with the rank correlation between them.

The real-data test imports LLMFAO's 8,931 crowd judgments (/work/shared/realdata/pairwise/llmfao,
CC BY 4.0) and compares the ranking with the one published on the LLMFAO leaderboard page
(dustalov.github.io/llmfao, "Human Judgements": Bradley-Terry scores computed with Evalica), whose
top 18 are listed below with their published scores.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from scipy.stats import spearmanr

from marlin.analytics.models import ReferenceJudgment, ReferenceSet
from marlin.analytics.references import reference_board
from marlin.audit.models import AuditEvent
from tests.analytics_views.factories import league, make_agent, make_project

LLMFAO = Path("/work/shared/realdata/pairwise/llmfao/crowd-comparisons.csv")
PUBLISHED = [  # (model, score) in the published order, ranks 1..18
    ("GPT 4", 0.041215),
    ("Platypus-2 Instruct (70B)", 0.029233),
    ("command", 0.028852),
    ("ReMM SLERP L2 13B", 0.027150),
    ("LLaMA-2-Chat (70B)", 0.026384),
    ("Claude v1", 0.026259),
    ("GPT 3.5 Turbo", 0.025871),
    ("Jurassic 2 Mid", 0.025849),
    ("Jurassic 2 Ultra", 0.025310),
    ("command-nightly", 0.025225),
    ("Mythalion 13B", 0.024030),
    ("GPT 3.5 Turbo (16k)", 0.023981),
    ("Falcon Instruct (40B)", 0.023752),
    ("GPT-NeoXT-Chat-Base (20B)", 0.023268),
    ("Chronos Hermes (13B)", 0.023229),
    ("Claude v2", 0.022926),
    ("Claude Instant v1", 0.022809),
    ("MPT-Chat (7B)", 0.022213),
]


def run_import(*args: str) -> str:
    out = io.StringIO()
    call_command("import", "judgments", *args, stdout=out)
    return out.getvalue()


@pytest.mark.skipif(not LLMFAO.is_file(), reason="shared real data (LLMFAO) is absent")
def test_llmfao_judgments_rank_as_published(erin, db) -> None:
    project = make_project("LLMFAO")
    out = run_import(str(LLMFAO), "--project", "LLMFAO")
    assert "8931 judgments imported, 0 already there, 0 bad records, of 8931 (format: csv)" in out
    assert ReferenceJudgment.objects.filter(reference_set__project=project).count() == 8931
    assert AuditEvent.objects.filter(verb="reference.import").count() == 1

    # Ties as half a win is what the published Bradley-Terry scores use (Evalica's default).
    board = reference_board(project, "half", rounds=0)
    assert board.ranking is not None and len(board.ranking.agents) == 59
    ours = {a.agent: a for a in board.ranking.agents}
    published_names = [name for name, _ in PUBLISHED]
    our_ranks = [ours[name].rank for name in published_names]
    rho = spearmanr([score for _, score in PUBLISHED], [ours[n].score for n in published_names])
    print(f"LLMFAO top 18, half-win BT vs published: Spearman rho = {rho.statistic:.4f}")
    assert our_ranks == list(range(1, 19)), our_ranks
    assert rho.statistic == pytest.approx(1.0)
    # Published scores are BT strengths: their log-ratios are our log-strength differences.
    top = ours["GPT 4"].log_strength
    for name, score in PUBLISHED:
        expected = math.log(score / PUBLISHED[0][1])
        assert ours[name].log_strength - top == pytest.approx(expected, abs=2e-3), name

    # The Davidson model (ties their own outcome) ranks these 18 the same way.
    davidson = reference_board(project, "davidson", rounds=0)
    assert davidson.ranking is not None
    theirs = {a.agent: a.rank for a in davidson.ranking.agents}
    rho_d = spearmanr(list(range(1, 19)), [theirs[n] for n in published_names]).statistic
    print(f"LLMFAO top 18, Davidson vs published: Spearman rho = {rho_d:.4f}")
    assert rho_d >= 0.99

    again = run_import(str(LLMFAO), "--project", "LLMFAO")
    assert "Nothing imported: this file was imported already as 'crowd-comparisons.csv'" in again
    assert ReferenceSet.objects.filter(project=project).count() == 1


def test_arena_battles_in_json_lines_with_ties_and_bad_lines(erin, db, tmp_path) -> None:
    project = make_project("Arena")
    lines = [
        {"model_a": "gpt-4", "model_b": "claude-v1", "winner": "model_a", "judge": "u1"},
        {"model_a": "gpt-4", "model_b": "vicuna-13b", "winner": "tie (bothbad)"},
        {"model_a": "vicuna-13b", "model_b": "claude-v1", "winner": "claude-v1"},
        {"model_a": "gpt-4", "model_b": "gpt-4", "winner": "tie"},
        {"model_a": "gpt-4", "model_b": "claude-v1", "winner": "maybe"},
        {"model_b": "claude-v1", "winner": "model_b"},
    ]
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    out = run_import(str(path), "--project", "Arena")
    assert "3 judgments imported, 0 already there, 4 bad records, of 7 (format: jsonl)" in out
    assert "line 4: model_a and model_b are the same model ('gpt-4')" in out
    assert "line 5: winner must be model_a, model_b, tie" in out and "got 'maybe'" in out
    assert "line 6: needs model_a and model_b (or left and right)" in out
    assert "line 7: malformed JSON" in out
    stored = list(
        ReferenceJudgment.objects.filter(reference_set__project=project)
        .order_by("line_no")
        .values_list("line_no", "model_a", "model_b", "winner", "judge")
    )
    assert stored == [
        (1, "gpt-4", "claude-v1", "a", "u1"),
        (2, "gpt-4", "vicuna-13b", "tie", ""),
        (3, "vicuna-13b", "claude-v1", "b", ""),
    ]


def test_a_csv_without_the_needed_columns_is_refused_and_nothing_is_stored(erin, db, tmp_path):
    make_project("Bad")
    path = tmp_path / "votes.csv"
    path.write_text("first,second,result\nx,y,x\n")
    with pytest.raises(CommandError, match="nothing that could be imported"):
        run_import(str(path), "--project", "Bad")
    assert not ReferenceSet.objects.exists()
    with pytest.raises(CommandError, match="no project named 'Nope'"):
        run_import(str(path), "--project", "Nope")


def test_the_page_shows_the_reference_board_and_its_rank_correlation(
    client_for, erin, alice, make_user, db, tmp_path
):
    anna = make_user("anna", "annotator")
    project = make_project("Mirror")
    agents = [make_agent("claude-code", "1.0"), make_agent("codex", "2"), make_agent("aider")]
    league(
        project,
        agents,
        [(0, 1, -2), (1, 0, 1), (1, 2, -1), (2, 1, 2), (0, 2, -3), (2, 0, 1), (1, 0, 2)],
        annotators=[alice, anna],
    )
    path = tmp_path / "ref.csv"
    rows = ["model_a,model_b,winner"]
    rows += ["claude-code 1.0,codex 2,model_a"] * 6 + ["codex 2,claude-code 1.0,model_a"] * 2
    rows += ["codex 2,aider,model_a"] * 5 + ["aider,codex 2,tie"] * 2
    rows += ["aider,claude-code 1.0,model_b"] * 5 + ["aider,claude-code 1.0,model_a"]
    rows += ["outsider,aider,tie"] * 3
    path.write_text("\n".join(rows) + "\n")
    assert "24 judgments imported" in run_import(str(path), "--project", "Mirror")

    html = client_for(erin).get(f"/leaderboard/{project.pk}/", {"rounds": 30}).content.decode()
    section = html[html.index('id="reference"') :]
    assert "Reference leaderboard (imported judgments)" in section
    assert "24 judgments from ref.csv" in section
    assert (
        "Rank correlation with the experts' leaderboard over 3 agents matched by name: "
        "Spearman ρ = 1.00, Kendall τ = 1.00 (exact p = 0.333)" in section
    )
    assert "outsider" in section  # a reference-only model is ranked too
    blind = client_for(alice).get(f"/leaderboard/{project.pk}/", {"rounds": 30}).content.decode()
    assert "Reference leaderboard" not in blind and "claude-code" not in blind


def test_only_admins_and_authors_import_and_control_characters_are_refused(
    erin, alice, db, tmp_path
):
    make_project("Guarded")
    path = tmp_path / "votes.csv"
    path.write_text("model_a,model_b,winner\nx,y,model_a\nx\x00,y,tie\n")
    with pytest.raises(CommandError, match="needs one of these roles: admin, author"):
        run_import(str(path), "--project", "Guarded", "--as", "alice")
    assert not ReferenceSet.objects.exists()
    out = run_import(str(path), "--project", "Guarded", "--as", "erin")
    assert "1 judgments imported, 0 already there, 1 bad records, of 2" in out
    assert "line 3: model_a contains a NUL character (U+0000); remove it" in out
