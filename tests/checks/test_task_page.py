"""The task page's environment and check results, after real check runs, and the re-run action."""

from __future__ import annotations

import pytest

from marlin.audit.models import AuditEvent
from marlin.checks.jobs import enqueue_checks, run_candidate_checks
from marlin.checks.models import CheckResult
from marlin.demo.sample_repo import patch_for
from tests.checks.scenario import demo_patches, demo_source, demo_task, make_candidate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MARKUP_TEST = """\
def test_markup_stays_text():
    print("<img src=x onerror=alert(1)>")
    assert "<script>alert('x')</script>" == "", "<b>not bold</b>"
"""
UNIT_TESTS = {"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}


def _checked(candidate):  # type: ignore[no-untyped-def]
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)
    return candidate


def test_the_task_page_shows_per_test_outcomes_and_escapes_what_the_code_printed(
    dave, client_for
) -> None:  # type: ignore[no-untyped-def]
    task = demo_task()
    task.checks = [UNIT_TESTS, *task.checks]
    task.created_by = dave
    task.save()
    patches = demo_patches()
    _checked(make_candidate(task, patches["flawed"], "agent-flawed"))
    markup = patch_for(demo_source(), {"tests/test_markup.py": MARKUP_TEST})
    _checked(make_candidate(task, markup, "agent-markup"))

    page = client_for(dave).get(f"/tasks/{task.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    section = html[html.index('id="environment-and-checks"') :]
    assert "agent-flawed 1" in section and "agent-markup 1" in section
    assert "No setup command, nothing to build" in section or "no setup command" in section
    # Per-test rows of the hidden tests, with the failing guard test marked failed.
    assert (
        "tests/test_negative_parentheses.py::test_parse_amount_rejects_unbalanced_parentheses"
        in section
    )
    assert '<span class="badge badge-failed">failed</span>' in section
    assert "4 of 5 required tests passed" in section
    # What the candidate's code printed and asserted is shown as text, never as markup.
    assert "tests/test_markup.py::test_markup_stays_text" in section
    assert "&lt;script&gt;alert(" in section
    assert "&lt;img src=x onerror=alert(1)&gt;" in section
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>not bold" not in html
    # Each check's raw log is shown beside its parsed result.
    assert '<div class="check-raw">\n      <h5>Raw log</h5>' in section


def test_a_failed_setup_shows_its_log_on_the_task_page(dave, client_for) -> None:  # type: ignore[no-untyped-def]
    task = demo_task(
        checks=[UNIT_TESTS],
        setup_command="echo '<b>pip</b> could not find ledgerlite-extras' >&2; exit 1",
    )
    task.created_by = dave
    task.save()
    _checked(make_candidate(task, demo_patches()["good"]))
    html = client_for(dave).get(f"/tasks/{task.pk}/").content.decode()
    section = html[html.index('id="environment-and-checks"') :]
    assert '<span class="badge badge-failed">Failed</span>' in section
    assert "<details open>\n      <summary>Setup log</summary>" in section
    assert "&lt;b&gt;pip&lt;/b&gt; could not find ledgerlite-extras" in section
    assert "the environment is failed, so the check did not run" in section


def test_the_author_reruns_checks_and_it_is_audited(dave, bob, alice, client_for) -> None:  # type: ignore[no-untyped-def]
    task = demo_task(checks=[UNIT_TESTS])
    task.created_by = dave
    task.save()
    candidate = _checked(make_candidate(task, demo_patches()["good"]))
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "passed"

    for outsider in (alice, bob):  # an annotator, and a reviewer who is not the author
        response = client_for(outsider).post(f"/checks/tasks/{task.pk}/rerun/", {"reason": "x"})
        assert response.status_code == 403
    row.refresh_from_db()
    assert row.status == "passed"

    response = client_for(dave).post(
        f"/checks/tasks/{task.pk}/rerun/", {"reason": "flaky runner"}, follow=True
    )
    assert response.status_code == 200
    assert "1 check result(s) queued again" in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.tests, row.log) == ("queued", [], "")
    event = AuditEvent.objects.get(verb="checks.rerun")
    assert event.actor == dave and event.reason == "flaky runner"
    assert event.new_values["check_results_requeued"] == 1

    run_candidate_checks.call(candidate.pk)
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("passed", 2)


def test_only_authors_reviewers_and_admins_see_the_task_page(alice, client_for) -> None:  # type: ignore[no-untyped-def]
    task = demo_task(checks=[UNIT_TESTS])
    assert client_for(alice).get(f"/tasks/{task.pk}/").status_code == 403


def test_reviewers_see_check_results_on_the_task_page_but_no_agent_names(bob, client_for) -> None:  # type: ignore[no-untyped-def]
    task = demo_task(checks=[UNIT_TESTS])
    _checked(make_candidate(task, demo_patches()["good"], "SecretAgentZephyr"))
    html = client_for(bob).get(f"/tasks/{task.pk}/").content.decode()
    section = html[html.index('id="environment-and-checks"') :]
    assert "Candidate 1 · turn 1" in section
    assert '<span class="badge badge-passed">passed</span>' in section
    assert "SecretAgentZephyr" not in html
