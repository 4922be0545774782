"""Checks as weak labels for a project: votes from check results, the label model's report.

Reads each comparison's two final candidates (the latest turn of each run), their check results
and patches, and turns them into labelling-function votes for marlin.analytics.weak_labels; the
decisions are the labels. For reviewers and the project's staff only: the weak label is never
shown to an annotator before the judgment (it would anchor them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from marlin.agents.models import Candidate
from marlin.analytics import weak_labels
from marlin.checks.models import CheckResult, CheckStatus
from marlin.grading.harness import harness_changes
from marlin.grading.spec import TEST_KINDS
from marlin.review.models import Comparison, Decision
from marlin.tasks.models import Project

LABELLING_FUNCTIONS = (
    "hidden tests: one side resolves them, the other not",
    "lint/security: findings on one side only",
    "test harness: one side changed it",
)
FINDING_KINDS = ("lint", "security")


@dataclass(frozen=True)
class Side:
    resolved: bool | None  # every test check passed; None: no finished test check
    findings: int | None  # lint/security findings; None: no finished lint/security check
    harness: bool  # the patch changes the test harness


def _side(results: list[Any], patch: str) -> Side:
    tests = [r for r in results if r.kind in TEST_KINDS and r.status != CheckStatus.QUEUED]
    scans = [r for r in results if r.kind in FINDING_KINDS and r.status == CheckStatus.PASSED]
    resolved = all(r.status == CheckStatus.PASSED for r in tests) if tests else None
    findings = sum(len(r.findings or []) for r in scans) if scans else None
    return Side(resolved, findings, bool(harness_changes(patch or "")))


def votes_of(a: Side, b: Side) -> list[int]:
    """One vote per labelling function: VOTE_FIRST (side A), VOTE_SECOND (side B) or ABSTAIN."""

    def vote(a_better: bool | None) -> int:
        if a_better is None:
            return weak_labels.ABSTAIN
        return weak_labels.VOTE_FIRST if a_better else weak_labels.VOTE_SECOND

    tests = None
    if a.resolved is not None and b.resolved is not None and a.resolved != b.resolved:
        tests = a.resolved
    scans = None
    if a.findings is not None and b.findings is not None and (a.findings == 0) != (b.findings == 0):
        scans = a.findings == 0
    harness = None if a.harness == b.harness else b.harness
    return [vote(tests), vote(scans), vote(harness)]


def label_of(overall: int) -> int:
    if overall < 0:
        return weak_labels.FIRST
    return weak_labels.SECOND if overall > 0 else weak_labels.TIE


@dataclass(frozen=True)
class ProjectVotes:
    """One row per comparison of the project that has both candidates."""

    ids: list[int]  # comparison ids
    votes: np.ndarray  # (comparisons x functions), side A voting as FIRST
    labels: np.ndarray  # decisions (UNKNOWN where undecided)
    pending: np.ndarray  # a check of either side is still queued or running


def comparison_votes(project: Project) -> ProjectVotes:
    """Votes, labels and whether checks are still running, per comparison of the project."""
    comparisons = list(
        Comparison.objects.filter(project=project).values_list("pk", "run_a_id", "run_b_id")
    )
    run_ids = {r for _, a, b in comparisons for r in (a, b)}
    latest: dict[int, tuple[int, int, str]] = {}  # run -> (turn number, candidate, patch)
    rows = Candidate.objects.filter(turn__run_id__in=run_ids).values_list(
        "turn__run_id", "turn__number", "pk", "patch"
    )
    for run_id, number, candidate_id, patch in rows.iterator(chunk_size=2000):
        if run_id not in latest or number > latest[run_id][0]:
            latest[run_id] = (number, candidate_id, patch)
    results: dict[int, list[Any]] = defaultdict(list)
    candidate_ids = [c for _, c, _ in latest.values()]
    for result in CheckResult.objects.filter(candidate_id__in=candidate_ids).only(
        "candidate_id", "kind", "status", "findings"
    ):
        results[result.candidate_id].append(result)
    decided = dict(
        Decision.objects.filter(comparison__project=project).values_list("comparison_id", "overall")
    )
    running = (CheckStatus.QUEUED, CheckStatus.RUNNING)
    ids: list[int] = []
    votes: list[list[int]] = []
    labels: list[int] = []
    pending: list[bool] = []
    for pk, run_a, run_b in comparisons:
        if run_a not in latest or run_b not in latest:
            continue
        _, cand_a, patch_a = latest[run_a]
        _, cand_b, patch_b = latest[run_b]
        ids.append(pk)
        votes.append(votes_of(_side(results[cand_a], patch_a), _side(results[cand_b], patch_b)))
        labels.append(label_of(decided[pk]) if pk in decided else weak_labels.UNKNOWN)
        pending.append(any(r.status in running for r in results[cand_a] + results[cand_b]))
    return ProjectVotes(
        ids,
        np.asarray(votes, dtype=np.int64).reshape(-1, len(LABELLING_FUNCTIONS)),
        np.asarray(labels, dtype=np.int64),
        np.asarray(pending, dtype=bool),
    )


def project_votes(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """Votes (comparisons x functions) and labels (UNKNOWN where undecided), one row per
    comparison of the project."""
    found = comparison_votes(project)
    return found.votes, found.labels


@dataclass(frozen=True)
class FunctionRow:
    name: str
    coverage: float  # share of comparisons where it voted
    accuracy: float | None  # share of its votes on decided comparisons that match the decision


@dataclass(frozen=True)
class WeakLabelReport:
    comparisons: int
    decided: int
    functions: list[FunctionRow]
    report: weak_labels.Report | None
    error: str


def weak_label_report(project: Project, *, threshold: float = 0.9) -> WeakLabelReport:
    votes, labels = project_votes(project)
    known = labels != weak_labels.UNKNOWN
    rows = []
    for f, name in enumerate(LABELLING_FUNCTIONS):
        fired = votes[:, f] != weak_labels.ABSTAIN
        judged = fired & known
        right = ((votes[:, f] == weak_labels.VOTE_FIRST) & (labels == weak_labels.FIRST)) | (
            (votes[:, f] == weak_labels.VOTE_SECOND) & (labels == weak_labels.SECOND)
        )
        rows.append(
            FunctionRow(
                name,
                float(fired.mean()) if len(fired) else 0.0,
                float(right[judged].mean()) if judged.any() else None,
            )
        )
    report = None
    error = ""
    try:
        report = weak_labels.evaluate(votes, labels, threshold=threshold)
    except weak_labels.LabelModelError as exc:
        error = str(exc)
    return WeakLabelReport(len(labels), int(known.sum()), rows, report, error)
