"""`{% task_checks task as checks %}`: a task's environment and its candidates' check results,
for the task page (authors, reviewers and admins see agent names there).
`{% changed_harness candidate as paths %}`: the candidate's changes to the test harness."""

from __future__ import annotations

import posixpath
from typing import Any

from django import template
from django.db.models import Prefetch

from marlin.agents.models import Candidate
from marlin.checks.models import CheckResult
from marlin.grading.harness import CONFIG_FILES, HARNESS_FILES, HARNESS_PATHS, harness_changes
from marlin.tasks.jobs import setup_hash
from marlin.tasks.models import Environment, Task

register = template.Library()
HARNESS_NAMES = HARNESS_FILES | CONFIG_FILES


@register.simple_tag
def task_checks(task: Task) -> dict[str, Any]:
    # Looked up, never created: rendering a page must not write.
    environment = Environment.objects.filter(
        repository_id=task.repository_id,
        commit=task.base_commit,
        setup_hash=setup_hash(task.setup_command, task.environment_spec),
    ).first()
    candidates = list(
        Candidate.objects.filter(turn__run__task=task)
        .select_related("turn__run__agent")
        .prefetch_related(
            Prefetch("check_results", queryset=CheckResult.objects.order_by("check_index"))
        )
        .order_by("turn__run_id", "turn__number")
    )
    return {"environment": environment, "candidates": candidates}


@register.simple_tag
def changed_harness(candidate: Candidate) -> list[str]:
    """Paths where the candidate's patch changes the test harness (conftest.py, pytest's
    configuration, a test runner script): flagged beside its check results."""
    if not candidate.fingerprints:
        # Only the sections of files that can be harness files, via the stored file index:
        # the comparison page of a large change does not read the whole patch for this.
        text = candidate.patch_sections(_maybe_harness)
        if text is not None:
            return harness_changes(text)
    return harness_changes(candidate.patch or "")


def _maybe_harness(entry: dict[str, Any]) -> bool:
    for path in (entry["path"], entry["old_path"]):
        if path and (path in HARNESS_PATHS or posixpath.basename(path) in HARNESS_NAMES):
            return True
    return False
