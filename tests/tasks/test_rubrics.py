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


def _formset(criteria: list[dict], note: str, *, initial: int = 5, **extra: str) -> dict:
    """What the rubric editor posts: one block of fields per criterion, in page order."""
    data = {
        "c-TOTAL_FORMS": str(len(criteria)),
        "c-INITIAL_FORMS": str(initial),
        "c-MIN_NUM_FORMS": "1",
        "c-MAX_NUM_FORMS": "1000",
        "change_note": note,
    }
    for i, c in enumerate(criteria):
        data |= {
            f"c-{i}-key": c["key"],
            f"c-{i}-name": c["name"],
            f"c-{i}-description": c.get("description", ""),
            f"c-{i}-guidance": c["guidance"],
            f"c-{i}-scale": "7-point",
            f"c-{i}-ORDER": str(i + 1),
        }
        if c.get("allow_not_applicable", True):
            data[f"c-{i}-allow_not_applicable"] = "on"
    return data | extra


def test_the_editor_shows_each_criterion_as_fields(client_for, erin, project):
    html = client_for(erin).get(f"/tasks/rubrics/{project.rubric_id}/edit/").content.decode()
    assert 'name="c-0-key" value="correctness"' in html and 'name="c-4-key" value="overall"' in html
    assert 'name="c-0-DELETE"' in html and 'name="c-0-ORDER"' in html
    assert 'id="criterion-template"' in html and "c-__prefix__-guidance" in html
    assert "Add a criterion" in html


def test_editing_creates_a_new_immutable_version_with_a_field_level_history(
    client_for, erin, project
):
    criteria = json.loads(json.dumps(DEFAULT_CRITERIA))
    criteria.append(
        {
            "key": "tests",
            "name": "Tests",
            "description": "Tests that fail without the change.",
            "guidance": "Are the tests meaningful?",
        }
    )
    criteria[1]["guidance"] += " Secrets in test fixtures count too."
    criteria[2]["allow_not_applicable"] = False
    data = _formset(criteria, "Experts asked for a tests criterion.")
    data["c-5-ORDER"] = "4.5"  # not a whole number: refused, nothing saved
    client = client_for(erin)
    refused = client.post(f"/tasks/rubrics/{project.rubric_id}/edit/", data)
    assert refused.status_code == 400 and project.rubric.versions.count() == 1
    # Reordered: security first, tests before reliability; maintainability removed.
    data |= {"c-0-ORDER": "2", "c-1-ORDER": "1", "c-5-ORDER": "3", "c-2-ORDER": "4"}
    data["c-3-DELETE"] = "on"
    response = client.post(f"/tasks/rubrics/{project.rubric_id}/edit/", data)
    assert response.status_code == 302
    versions = list(project.rubric.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].criterion_keys == [
        "security",
        "correctness",
        "tests",
        "reliability",
        "overall",
    ]
    tests = next(c for c in versions[1].criteria if c["key"] == "tests")
    assert tests["description"] == "Tests that fail without the change."
    assert (
        next(c for c in versions[1].criteria if c["key"] == "reliability")["allow_not_applicable"]
        is False
    )
    with pytest.raises(ValueError, match="immutable"):
        versions[0].save()
    history = client.get(f"/tasks/rubrics/{project.rubric_id}/history/").content.decode()
    assert "Experts asked for a tests criterion." in history and "by erin" in history
    assert "added</span> <strong>Tests</strong> <code>tests</code>" in history
    assert "removed</span> <strong>Maintainability</strong>" in history
    assert "moved from position 1 to 2" in history or "moved from position 2 to 1" in history
    # A change at the end of a long guidance is shown word by word, not as a whole new line.
    assert "<ins>Secrets in test fixtures count too.</ins>" in history
    assert (
        '<dt>Not applicable allowed</dt><dd class="word-diff"><del>yes</del><ins>no</ins>'
        in history
    )


def test_a_change_note_is_required_and_bad_criteria_are_explained(client_for, erin, project):
    with pytest.raises(ValidationError, match="change note is required"):
        do_revise_rubric(erin, project.rubric, DEFAULT_CRITERIA, note="")
    client = client_for(erin)
    url = f"/tasks/rubrics/{project.rubric_id}/edit/"
    response = client.post(url, _formset(DEFAULT_CRITERIA, "drop overall", **{"c-4-DELETE": "on"}))
    assert response.status_code == 400
    assert "needs an &#x27;overall&#x27; criterion" in response.content.decode()
    bad_key = json.loads(json.dumps(DEFAULT_CRITERIA))
    bad_key[0]["key"] = "Correct ness"
    html = client.post(url, _formset(bad_key, "rename")).content.decode()
    assert "criterion 1 key: Value error, use lower-case letters" in html
    assert 'value="Correct ness"' in html  # what was typed is still there
    unchanged = client.post(url, _formset(DEFAULT_CRITERIA, "no change")).content.decode()
    assert "Nothing changed" in unchanged
    assert project.rubric.versions.count() == 1


def test_only_admins_edit_rubrics_but_experts_read_the_history(client_for, alice, project):
    client = client_for(alice)
    assert client.get(f"/tasks/rubrics/{project.rubric_id}/edit/").status_code == 403
    assert client.get(f"/tasks/rubrics/{project.rubric_id}/history/").status_code == 200
