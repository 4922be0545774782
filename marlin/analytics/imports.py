"""`marlin import judgments`: external pairwise judgments as a project's reference set.

Formats: an arena battle export (a JSON list or JSON lines of {model_a, model_b, winner, judge?}),
or CSV with a header naming model_a, model_b and winner (left and right are accepted for the
models, as in LLMFAO). A winner is model_a / a / left, model_b / b / right, a tie (tie,
"tie (bothbad)", draw), or the winning model's own name. Every bad record is reported with its
line and reason and the good ones are imported; the same file (by content) is imported once.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from django.db import transaction

from marlin.accounts.models import User
from marlin.analytics.models import ReferenceJudgment, ReferenceSet, Winner
from marlin.audit.actions import record
from marlin.permissions import require_role
from marlin.tasks.imports import (
    ImportReport,
    LineError,
    ProgressCallback,
    control_character_problem,
    read_records,
)
from marlin.tasks.models import Project

MAX_NAME = 200
BATCH = 2000
MODEL_A = ("model_a", "left")
MODEL_B = ("model_b", "right")
JUDGE = ("judge", "worker", "annotator")
WINNERS = {
    "model_a": Winner.A,
    "a": Winner.A,
    "left": Winner.A,
    "model_b": Winner.B,
    "b": Winner.B,
    "right": Winner.B,
    "tie": Winner.TIE,
    "tie (bothbad)": Winner.TIE,
    "draw": Winner.TIE,
}


def _field(data: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""


def parse_judgment(data: dict[str, Any]) -> tuple[str, str, str, str]:
    """(model_a, model_b, winner, judge) from one record; ValueError says what is wrong."""
    model_a, model_b = _field(data, MODEL_A), _field(data, MODEL_B)
    if not model_a or not model_b:
        raise ValueError("needs model_a and model_b (or left and right)")
    for value in (model_a, model_b):
        if len(value) > MAX_NAME:
            raise ValueError(f"a model name is longer than {MAX_NAME} characters")
    if model_a == model_b:
        raise ValueError(f"model_a and model_b are the same model ({model_a!r})")
    raw = _field(data, ("winner",))
    winner = WINNERS.get(raw.lower())
    if winner is None:
        winner = Winner.A if raw == model_a else Winner.B if raw == model_b else None
    if winner is None:
        raise ValueError(
            "winner must be model_a, model_b, tie (also a, b, left, right, draw, "
            f"'tie (bothbad)') or one of the two models' names; got {raw!r}"
        )
    judge = _field(data, JUDGE)[:MAX_NAME]
    return model_a, model_b, winner, judge


def _csv_records(text: str, report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    report.format = "csv"
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    has_a = any(h in header for h in MODEL_A)
    has_b = any(h in header for h in MODEL_B)
    if not (has_a and has_b and "winner" in header):
        report.error(
            1,
            "the CSV header must name model_a, model_b and winner (or left, right and winner); "
            f"got {', '.join(header) or 'no header'}",
        )
        return []
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            report.records += 1
            rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None}))
    except csv.Error as exc:
        report.error(reader.line_num, f"unreadable CSV: {exc}; rows after it were not read")
    return rows


def read_judgment_records(text: str, report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    if text.lstrip()[:1] in ("[", "{"):
        return list(read_records(text, report))
    return _csv_records(text, report)


def do_import_judgments(
    actor: User,
    project: Project,
    text: str,
    *,
    filename: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Store a file's judgments as one ReferenceSet of the project (admins and authors)."""
    require_role(actor, "admin", "author")
    report = ImportReport()
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    existing = ReferenceSet.objects.filter(project=project, sha256=digest).first()
    if existing is not None:
        report.format = existing.format
        report.records = existing.records
        report.skipped.append(LineError(0, f"this file was imported already as {existing.name!r}"))
        return report
    rows: list[tuple[int, str, str, str, str]] = []
    records = read_judgment_records(text, report)
    for done, (line_no, data) in enumerate(records, start=1):
        problem = control_character_problem(data)
        if problem:
            report.error(line_no, problem)
            continue
        try:
            rows.append((line_no, *parse_judgment(data)))
        except ValueError as exc:
            report.error(line_no, str(exc), data)
        if progress and done % BATCH == 0:
            progress(done, len(records))
    if not rows:
        return report
    with transaction.atomic():
        reference_set = ReferenceSet.objects.create(
            project=project,
            name=(filename or "judgments")[:MAX_NAME],
            format=report.format,
            sha256=digest,
            records=report.records,
            imported_by=actor,
        )
        ReferenceJudgment.objects.bulk_create(
            (
                ReferenceJudgment(
                    reference_set=reference_set,
                    line_no=line_no,
                    model_a=a,
                    model_b=b,
                    winner=winner,
                    judge=judge,
                )
                for line_no, a, b, winner, judge in rows
            ),
            batch_size=BATCH,
        )
        report.created = len(rows)
        report.created_ids.append(reference_set.pk)
        record(
            actor,
            "reference.import",
            reference_set,
            new={"file": filename, "format": report.format, **report.summary},
            project_id=project.pk,
        )
    if progress:
        progress(len(records), len(records))
    return report
