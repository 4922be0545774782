"""Active pair selection wired into pairing (marlin.analytics.active) and its page."""

from __future__ import annotations

from collections import Counter

import pytest

from marlin.agents import actions
from marlin.agents.models import Provider
from marlin.agents.pairing import UNIFORM_REASON, do_pair_tasks, pair_key
from marlin.audit.models import AuditEvent
from marlin.review.models import Comparison, WorkKind, WorkSession
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Project
from tests.analytics_views.factories import league


@pytest.fixture
def decided_pool(db, erin, dave):
    """Four agents; many decisions of 0-1 and of 2-3, one of 1-2, none of the cross pairs."""
    from marlin.demo.load import ensure_demo_repository

    repository = ensure_demo_repository()
    project = task_actions.do_create_project(erin, "Active")
    agents = [
        actions.do_create_agent(
            dave, name=f"agent-{n}", provider=Provider.COMMAND, settings={"argv": ["true"]}
        )
        for n in range(4)
    ]
    actions.do_set_agent_pool(erin, project, agents, reason="four agents")
    results = [(0, 1, -1 if n % 3 else 1) for n in range(20)]
    results += [(2, 3, -1 if n % 3 else 1) for n in range(20)]
    results += [(1, 2, 0)]
    league(project, agents, results)
    tasks = [
        task_actions.do_create_task(
            dave,
            project,
            repository=repository,
            base_ref="main",
            base_commit="0" * 40,
            title=f"new task {n}",
            kind="feature",
            prompt=f"Do new thing {n}.",
            checks=[],
        )
        for n in range(8)
    ]
    return project, agents, tasks


def _pairs_chosen(project: Project) -> list[dict]:
    event = AuditEvent.objects.filter(verb="project.pair_tasks", object_id=str(project.pk)).last()
    assert event is not None
    return event.new_values["pairs"]


def test_active_selection_pairs_the_uncertain_cross_pairs_and_says_why(decided_pool, dave):
    project, agents, tasks = decided_pool
    assert project.pair_selection == "active"  # the default
    started = do_pair_tasks(dave, project, tasks, seed=4)
    chosen = Counter(pair_key(a.agent_id, b.agent_id) for a, b in started)
    well_known = {pair_key(agents[0].pk, agents[1].pk), pair_key(agents[2].pk, agents[3].pk)}
    # Exploration may take a well-known pair now and then; value never does.
    assert sum(n for pair, n in chosen.items() if pair in well_known) <= 2
    assert len(chosen) >= 3  # the batch spreads over the pairs that need it
    reasons = [p["why"] for p in _pairs_chosen(project)]
    assert all(r.startswith("active: ") for r in reasons)
    assert any("per expert minute" in r for r in reasons)


def test_uniform_mode_and_a_project_without_decisions_pair_uniformly(decided_pool, erin, dave):
    project, agents, tasks = decided_pool
    project.pair_selection = "uniform"
    project.save(update_fields=["pair_selection"])
    do_pair_tasks(dave, project, tasks[:2], seed=1)
    assert {p["why"] for p in _pairs_chosen(project)} == {UNIFORM_REASON}

    fresh = task_actions.do_create_project(erin, "Fresh")
    actions.do_set_agent_pool(erin, fresh, agents, reason="same agents")
    task = task_actions.do_create_task(
        dave,
        fresh,
        repository=tasks[0].repository,
        base_ref="main",
        base_commit="0" * 40,
        title="first task",
        kind="feature",
        prompt="Do it.",
        checks=[],
    )
    do_pair_tasks(dave, fresh, [task], seed=1)
    assert {p["why"] for p in _pairs_chosen(fresh)} == {UNIFORM_REASON}


def test_the_page_explains_the_next_pairs_with_measured_minutes(
    decided_pool, client_for, dave, erin, make_user
):
    project, agents, tasks = decided_pool
    comparison = Comparison.objects.filter(project=project).first()
    assert comparison is not None
    WorkSession.objects.create(
        user=erin,
        kind=WorkKind.JUDGMENT,
        comparison=comparison,
        subject_id=comparison.pk,
        opened_ms=0,
        last_seen_ms=2_700_000,
        active_ms=2_700_000,  # 45 minutes
    )
    page = client_for(dave).get(f"/tasks/projects/{project.pk}/")
    assert f"/leaderboard/{project.pk}/selection/" in page.content.decode()
    response = client_for(dave).get(f"/leaderboard/{project.pk}/selection/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Why the next pairs are chosen" in html
    assert "41 decided comparisons" in html
    assert "45 minutes" in html
    first_row = html.split("<tbody>")[1].split("</tr>")[0]
    # The top pair links the two well-measured groups {0, 1} and {2, 3}.
    assert ("agent-0" in first_row) != ("agent-1" in first_row)
    assert ("agent-2" in first_row) != ("agent-3" in first_row)
    annotator = make_user("anne", "annotator")
    assert client_for(annotator).get(f"/leaderboard/{project.pk}/selection/").status_code == 403


def test_the_author_chooses_what_active_selection_aims_at(decided_pool, client_for, erin, dave):
    """The target is a project policy set on the project's form (audited like the rest of it);
    the selection page and the pairing reasons then speak of that target."""
    from tests.tasks.test_project_network_policy import form_data

    project, agents, tasks = decided_pool
    assert project.selection_target == "width"  # the default
    refused = client_for(erin).post(
        f"/tasks/projects/{project.pk}/edit/",
        form_data(project, selection_target="fastest", reason="try"),
    )
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    project.refresh_from_db()
    assert project.selection_target == "width"

    saved = client_for(erin).post(
        f"/tasks/projects/{project.pk}/edit/",
        form_data(project, selection_target="order", reason="we pick one agent"),
    )
    assert saved.status_code == 302
    project.refresh_from_db()
    assert project.selection_target == "order"
    event = AuditEvent.objects.filter(verb="project.update", object_id=str(project.pk)).last()
    assert event is not None and event.new_values["selection_target"] == "order"

    assert (
        "aiming at whole ranking"
        in client_for(dave).get(f"/tasks/projects/{project.pk}/").content.decode()
    )
    html = client_for(dave).get(f"/leaderboard/{project.pk}/selection/").content.decode()
    assert "most lowers the expected number of agents ranked in the wrong order" in html
    assert "knowledge-gradient" in html
    do_pair_tasks(dave, project, tasks[:3], seed=2)
    reasons = [p["why"] for p in _pairs_chosen(project)]
    assert any("wrong order" in r for r in reasons if not r.endswith("uniform"))
