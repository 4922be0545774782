"""The demo data: what `make demo` loads must be complete, loadable twice, and usable; its
history fills the leaderboard, agreement, experts, earnings and exports, and its two live
agents really run through the scripted model server and the worker's job."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db.models import Count

from marlin.accounts.models import Earning, User
from marlin.agents.jobs import run_turn
from marlin.agents.models import Agent, Candidate, Provider, Run, Turn, TurnStatus
from marlin.agents.pairing import do_pair_task
from marlin.audit.models import AuditEvent
from marlin.demo.load import (
    DEMO_PASSWORD,
    DEMO_USERS,
    demo_source_path,
    load_demo,
    start_pages,
)
from marlin.demo.model_script import answer
from marlin.demo.sample_repo import head_commit
from marlin.demo.sample_repo_files import TASKS
from marlin.devtools.model_server import FakeModelServer
from marlin.exports.models import Export
from marlin.review.actions import do_ask_follow_up
from marlin.review.models import (
    Comparison,
    ComparisonState,
    Decision,
    DecisionSource,
    Judgment,
    JudgmentStatus,
    Review,
    ReviewVerdict,
)
from marlin.review.queue import claim
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Project, Task, TaskStatus

pytestmark = pytest.mark.slow

MODEL_URL = "http://127.0.0.1:9"  # stored in the live agents; nothing calls it in these tests

COUNTED = [Task, Agent, Run, Candidate, Comparison, Judgment, Review, Decision, Earning, AuditEvent]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


@pytest.fixture
def demo(db, capsys) -> Project:
    call_command("demo", "--load-only", "--model-server", MODEL_URL.removeprefix("http://"))
    assert "Demo logins" in capsys.readouterr().out
    return Project.objects.get(name="Ledgerlite pilot")


def test_the_demo_loads_once_and_is_ready_to_judge(demo, client):
    first = counts()
    load_demo(model_url=MODEL_URL)  # a second load changes nothing
    assert counts() == first
    assert Task.objects.filter(project=demo, source="demo").count() == 4
    assert Task.objects.filter(status=TaskStatus.DRAFT).count() == 1  # for the reviewer
    # The original three tasks wait for the annotators, blind and between two agents.
    waiting = Comparison.objects.filter(state=ComparisonState.AWAITING_JUDGMENTS)
    assert waiting.count() == 3
    assert all(c.run_a.agent_id != c.run_b.agent_id for c in waiting)
    for spec in DEMO_USERS:
        user = User.objects.get(username=spec.username)
        assert set(spec.roles) <= set(user.role_names())
        assert client.login(username=spec.username, password=DEMO_PASSWORD)
        assert client.get("/").status_code == 200


def test_the_history_is_decided_through_the_pipeline(demo):
    imported = Agent.objects.filter(provider=Provider.IMPORT, runs__task__project=demo).distinct()
    assert imported.count() >= 4
    decided = Comparison.objects.filter(project=demo, state=ComparisonState.DECIDED)
    assert decided.count() >= 60
    # Every decision has its two judgments, each reviewed; some were disputed and adjudicated,
    # some sent back for revision and resubmitted.
    assert not decided.annotate(n=Count("judgments")).exclude(n=2).exists()
    by_source = dict(Decision.objects.values_list("source").annotate(n=Count("pk")))
    assert by_source[DecisionSource.ADJUDICATION] >= 3
    assert by_source[DecisionSource.AGREEMENT] >= 30
    revisions = Review.objects.filter(verdict=ReviewVerdict.REVISION)
    assert revisions.count() >= 2
    assert Judgment.objects.filter(pk__in=revisions.values("judgment"), status="accepted").exists()
    # Something is left for every role.
    assert Comparison.objects.filter(project=demo, state=ComparisonState.IN_REVIEW).count() >= 3
    assert Comparison.objects.filter(project=demo, state=ComparisonState.DISPUTED).count() >= 2
    alice = User.objects.get(username="alice")
    assert Judgment.objects.filter(annotator=alice, status=JudgmentStatus.REVISION_REQUESTED)
    # Time is what the heartbeats measured, and the work was paid with the decisions.
    accepted = Judgment.objects.filter(status=JudgmentStatus.ACCEPTED)
    assert accepted.filter(active_seconds__gt=60).count() == accepted.count()
    paid = set(Earning.objects.values_list("user__username", flat=True))
    assert {"alice", "anna", "priya", "tomas", "bob", "brian", "carol"} <= paid
    # The ties and both directions a real panel gives.
    overall = list(Decision.objects.values_list("overall", flat=True))
    assert min(overall) < 0 < max(overall) and 0 in overall


def test_every_role_starts_on_a_populated_page(demo, client):
    pages = start_pages(demo)
    expect = {
        "erin": ["atlas-coder", "corvid-agent", "heron-swe", "kestrel-dev", "bootstrap interval"],
        "dave": ["Add Ledger.accounts()"],
        "alice": ["3"],
        "bob": ["Review"],
        "carol": ["Adjudicate"],
    }
    for username, texts in expect.items():
        client.login(username=username, password=DEMO_PASSWORD)
        response = client.get(pages[username])
        assert response.status_code == 200, (username, pages[username])
        html = response.content.decode()
        for text in texts:
            assert text in html, (username, text)
        client.logout()


def test_the_leaderboard_ranks_four_agents_with_intervals_in_their_true_order(demo, client):
    client.login(username="erin", password=DEMO_PASSWORD)
    response = client.get(f"/leaderboard/{demo.pk}/")
    assert response.status_code == 200
    rows = {row["label"]: row for row in response.context["plain_rows"]}
    assert {"atlas-coder 1", "corvid-agent 1", "heron-swe 1", "kestrel-dev 1"} <= set(rows)
    for row in rows.values():
        assert float(row["lower"]) < float(row["score"]) < float(row["upper"])
    # The simulated strengths are atlas > corvid > heron > kestrel; with ~60 decisions the
    # strongest and the weakest are always told apart.
    assert float(rows["atlas-coder 1"]["score"]) > float(rows["kestrel-dev 1"]["score"])
    # Agreement: per criterion over the comparisons with two judgments, and per expert.
    overall = next(r for r in response.context["criterion_rows"] if r["criterion"] == "overall")
    assert overall["units"] >= 60 and overall["alpha"] not in ("", "—", None)
    experts = {row["name"]: row for row in response.context["expert_rows"]}
    assert {"alice", "anna", "priya", "tomas"} <= set(experts)
    assert all(row["judgments"] >= 20 for row in experts.values())


def test_agreement_experts_and_earnings_are_populated(demo, client):
    client.login(username="erin", password=DEMO_PASSWORD)
    experts = client.get(f"/leaderboard/{demo.pk}/experts/")
    assert experts.status_code == 200
    html = experts.content.decode()
    for name in ("alice", "anna", "priya", "tomas"):
        assert name in html
    client.logout()
    client.login(username="alice", password=DEMO_PASSWORD)
    earnings = client.get("/account/earnings/")
    assert earnings.status_code == 200
    mine = Earning.objects.filter(user__username="alice")
    assert mine.exists() and sum(e.amount_cents for e in mine) > 0
    assert "$" in earnings.content.decode()


def test_an_export_of_the_demo_builds(demo, capsys):
    call_command("export", "preferences", "--project", demo.name)
    export = Export.objects.get()
    assert export.status == "done", export.error
    # One preference pair per decided comparison that is not a tie.
    pairs = export.manifest["counts"]
    assert max(int(n) for n in pairs.values() if isinstance(n, int)) >= 40, pairs
    assert "written to" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_a_new_task_gets_two_live_runs_and_a_follow_up_through_the_demo_model_server(
    monkeypatch,
):
    with FakeModelServer(side=answer) as server:
        project = load_demo(model_url=server.url)
        pool = list(project.agent_pool.order_by("name"))
        assert [a.name for a in pool] == ["osprey-live", "petrel-live"]
        assert {a.provider for a in pool} == {Provider.OPENAI, Provider.ANTHROPIC}
        dave, carol, alice = (User.objects.get(username=n) for n in ("dave", "carol", "alice"))
        task = task_actions.do_create_task(
            dave,
            project,
            repository=Task.objects.filter(project=project).first().repository,
            base_ref="main",
            base_commit=head_commit(demo_source_path()),
            title="Mention the CSV importer in the README",
            kind="docs",
            prompt="Say in the README that CSV files can be imported with load_csv.",
            checks=[],
        )
        task_actions.do_approve_task(carol, task)
        first, second = do_pair_task(dave, task)
        for run in (first, second):
            run_turn.call(run.turns.get().pk)  # what the worker does with the queued job
        comparison = Comparison.objects.get(task=task)
        for run in (first, second):
            turn = run.turns.get()
            assert turn.status == TurnStatus.DONE, turn.error
            assert turn.exit_status == "submitted"
            assert turn.candidate.patch.strip()
        served = {r.body.get("model") for r in server.requests}
        assert served == {"demo-careful", "demo-hasty"}
        assert {r.path for r in server.requests} == {"/v1/chat/completions", "/v1/messages"}

        # A follow-up continues both conversations and both sides produce a second turn.
        assert claim(alice, comparison) is not None
        do_ask_follow_up(alice, comparison, "Also say which columns the CSV file needs.")
        for turn in Turn.objects.filter(run__in=[first, second], number=2):
            run_turn.call(turn.pk)
        comparison.refresh_from_db()
        assert comparison.turn_count == 2
        notes = [t.candidate.patch for t in Turn.objects.filter(number=2, run__task=task)]
        assert len(notes) == 2 and all("Turn 2: Also say which columns" in n for n in notes)


def test_a_demo_task_gets_the_personas_solutions():
    """On the demo's own tasks the careful persona reads the code first and writes the good
    solution; the hasty one writes the flawed one at once (what a newcomer sees when they pair
    one of them)."""
    assert answer("/v1/messages", {"messages": []}) is None
    prompt = next(t for t in TASKS if t["key"] == "balance-at")["prompt"]
    body = {"model": "demo-hasty", "messages": [{"role": "user", "content": prompt}]}
    hasty = answer("/v1/messages", body)
    assert hasty is not None and hasty.tool_calls[0].name == "write_file"
    assert "if entry.day < until" in str(hasty.tool_calls[0].arguments)  # the off-by-one
    body["model"] = "demo-careful"
    careful = answer("/v1/chat/completions", body)
    assert careful is not None and careful.tool_calls[0].name == "view_file"
