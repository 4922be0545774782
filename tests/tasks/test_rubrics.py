import json

import pytest
from django.core.exceptions import ValidationError

from marlin.tasks.actions import do_revise_rubric
from marlin.tasks.rubric import DEFAULT_CRITERIA


def test_the_default_rubric_has_the_four_criteria_and_overall(project):
    version = project.rubric.current_version()
    assert version.number == 1
    assert version.criterion_keys == [
        "correctness",
        "security",
        "reliability",
        "maintainability",
        "overall",
    ]
    assert all(len(c["guidance"]) > 150 for c in version.criteria)


def test_editing_creates_a_new_immutable_version_with_a_note(client_for, erin, project):
    criteria = json.loads(json.dumps(DEFAULT_CRITERIA))
    criteria.insert(4, {"key": "tests", "name": "Tests", "guidance": "Are the tests meaningful?"})
    response = client_for(erin).post(
        f"/tasks/rubrics/{project.rubric_id}/edit/",
        {"criteria": json.dumps(criteria), "change_note": "Experts asked for a tests criterion."},
    )
    assert response.status_code == 302
    versions = list(project.rubric.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert "tests" not in versions[0].criterion_keys and "tests" in versions[1].criterion_keys
    with pytest.raises(ValueError, match="immutable"):
        versions[0].save()
    history = client_for(erin).get(f"/tasks/rubrics/{project.rubric_id}/history/").content.decode()
    assert "Experts asked for a tests criterion." in history
    assert "+    &quot;key&quot;: &quot;tests&quot;," in history
    assert "by erin" in history


def test_a_change_note_is_required_and_bad_criteria_are_explained(client_for, erin, project):
    with pytest.raises(ValidationError, match="change note is required"):
        do_revise_rubric(erin, project.rubric, DEFAULT_CRITERIA, note="")
    no_overall = [c for c in DEFAULT_CRITERIA if c["key"] != "overall"]
    response = client_for(erin).post(
        f"/tasks/rubrics/{project.rubric_id}/edit/",
        {"criteria": json.dumps(no_overall), "change_note": "drop overall"},
    )
    assert "needs an &#x27;overall&#x27; criterion" in response.content.decode()
    assert project.rubric.versions.count() == 1


def test_only_admins_edit_rubrics_but_experts_read_the_history(client_for, alice, project):
    client = client_for(alice)
    assert client.get(f"/tasks/rubrics/{project.rubric_id}/edit/").status_code == 403
    assert client.get(f"/tasks/rubrics/{project.rubric_id}/history/").status_code == 200
