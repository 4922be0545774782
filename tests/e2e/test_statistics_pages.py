"""In chromium, on the demo data: the leaderboard says how sure it is, shows the reference board
imported with `marlin import judgments`, and links to the experts page."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from marlin.accounts.models import User
from marlin.demo.load import DEMO_PASSWORD, load_demo
from marlin.review.models import Comparison, Judgment
from tests.analytics_views.factories import decide, judge


@pytest.fixture
def demo(transactional_db, tmp_path):
    project = load_demo()
    alice, anna = User.objects.get(username="alice"), User.objects.get(username="anna")
    # The demo's open comparisons, judged by its two annotators and decided (comparisons the
    # demo already decided keep their history).
    open_comparisons = Comparison.objects.filter(project=project, decision__isnull=True)
    for n, comparison in enumerate(open_comparisons.order_by("pk")):
        verdict = -2 if n % 2 == 0 else 1
        for who, value in ((alice, verdict), (anna, verdict if n != 1 else 0)):
            if not Judgment.objects.filter(comparison=comparison, annotator=who).exists():
                judge(comparison, who, value)
        decide(comparison, verdict)
    reference = tmp_path / "arena.csv"
    reference.write_text(
        "model_a,model_b,winner\n"
        + "atlas-coder,corvid-agent,model_a\n" * 5
        + "corvid-agent,atlas-coder,tie\n" * 2
        + "corvid-agent,atlas-coder,model_a\n"
    )
    call_command(
        "import", "judgments", str(reference), "--project", project.name, stdout=io.StringIO()
    )
    return project


def test_an_admin_reads_the_leaderboard_and_the_experts_page(
    page, live_server, login, demo, artifacts_dir
):
    login(page, live_server, User.objects.get(username="erin"), DEMO_PASSWORD)
    page.goto(f"{live_server.url}/leaderboard/{demo.pk}/?rounds=50")
    page.wait_for_selector("text=Ties: Davidson model (a tie is its own outcome)")
    ranking = page.locator("section", has=page.get_by_role("heading", name="Ranking", exact=True))
    rows = ranking.locator("tbody tr")
    assert rows.count() >= 2
    assert all(" ± " in rows.nth(i).inner_text() for i in range(rows.count()))
    # Every provisional badge says why on hover.
    badges = ranking.locator(".badge", has_text="provisional")
    assert all(badges.nth(i).get_attribute("title") for i in range(badges.count()))
    assert ranking.get_by_text("How many more comparisons?").count() == 1
    page.wait_for_selector("text=Reference leaderboard (imported judgments)")
    assert page.locator("#reference").get_by_text("8 judgments from arena.csv").count() == 1
    coefficients = page.locator(
        "section", has=page.get_by_role("heading", name="Agreement coefficients: overall")
    )
    assert coefficients.get_by_text("Gwet's AC1").count() == 1
    page.get_by_label("Ties").select_option("half")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_selector("#ranking-method:has-text('Ties: ties counted as half a win')")
    page.screenshot(path=str(artifacts_dir / "leaderboard-certainty.png"), full_page=True)

    page.get_by_role("link", name="Experts and skill-weighted ranking").click()
    page.wait_for_selector("h2:has-text('Rater quality')")
    experts = page.locator("#experts tbody tr")
    names = {experts.nth(i).locator("td").first.inner_text() for i in range(experts.count())}
    assert {"alice", "anna"} <= names
    # Skill and agreement with decisions come with their 95% intervals.
    for i in range(experts.count()):
        cells = experts.nth(i).locator("td")
        assert " to " in cells.nth(2).inner_text() and " to " in cells.nth(5).inner_text()
    assert page.locator("#skill-weighted tbody tr").count() >= 2
    page.screenshot(path=str(artifacts_dir / "experts-page.png"), full_page=True)
