"""The export job: build rows from the database, write them into a fresh directory, hash them.

The Export row is the truth. The job claims it (queued -> running) atomically, writes into a
hidden `.partial` directory and renames it into place only when every file and the manifest are
written, so a finished export directory is never seen half-written and is never written again.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.utils import timezone
from django_tasks import task

from marlin.analytics.queries import DecisionFilters, decisions_for
from marlin.exports import build
from marlin.exports.models import Export, ExportKind, ExportStatus
from marlin.exports.writers import (
    PREFERENCE_FORMATS,
    PREFERENCE_SCHEMA,
    Digests,
    write_jsonl,
    write_manifest,
    write_preferences,
)
from marlin.paths import exports_dir

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 500


def marlin_version() -> str:
    try:
        return importlib.metadata.version("marlin")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def directory_name(export: Export) -> str:
    return f"{export.pk}-{export.kind}-{export.created_at:%Y%m%dT%H%M%SZ}"


class Progress:
    """Counts rows and writes Export.progress (percent of the expected rows) now and then."""

    def __init__(
        self, export_id: int, expected: int, listener: Callable[[int], None] | None = None
    ) -> None:
        self.export_id, self.expected, self.done, self.last = export_id, max(expected, 1), 0, -1
        self.listener = listener

    def wrap(
        self, rows: Iterator[dict[str, Any]], share: float = 1.0, offset: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        for row in rows:
            self.done += 1
            if self.done % PROGRESS_EVERY == 0:
                self.set(offset + share * min(self.done / self.expected, 1.0) * 100)
            yield row

    def wrap_batches(
        self, batches: Iterator[dict[str, list[Any]]]
    ) -> Iterator[dict[str, list[Any]]]:
        """wrap() for batches of rows given as columns (build.preference_batches)."""
        for batch in batches:
            before = self.done
            self.done += len(next(iter(batch.values()), []))
            if self.done // PROGRESS_EVERY != before // PROGRESS_EVERY:
                self.set(min(self.done / self.expected, 1.0) * 100)
            yield batch

    def set(self, percent: float) -> None:
        value = int(min(max(percent, 0), 99))  # 100 is written only with status done
        if value != self.last:
            Export.objects.filter(pk=self.export_id).update(progress=value)
            self.last = value
            if self.listener is not None:
                self.listener(value)


def _write_preferences(
    export: Export, filters: DecisionFilters, out: Path, progress: Progress, digests: Digests
) -> dict[str, Any]:
    options = export.filters or {}
    formats = options.get("formats") or list(PREFERENCE_FORMATS)
    counts: dict[str, Any] = {}
    batches = progress.wrap_batches(
        build.preference_batches(
            export.project,
            filters,
            conversations=bool(options.get("conversations")),
            counts=counts,
        )
    )
    written = write_preferences(out, batches, formats, PREFERENCE_SCHEMA, digests)
    return {
        "rows": written,
        "ties_excluded": counts.get("ties_excluded", 0),
        "decisions": counts.get("decisions_seen", 0),
        "rubric_versions": sorted(
            counts.get("rubric_versions", {}).values(), key=lambda v: v["rubric_version_id"]
        ),
        "formats": formats,
    }


def _write_records(
    export: Export, filters: DecisionFilters, out: Path, progress: Progress, digests: Digests
) -> dict[str, Any]:
    project = export.project
    counts = {
        "judgments": write_jsonl(
            out / "judgments.jsonl", progress.wrap(build.judgment_records(project, filters))
        ),
        "reviews": write_jsonl(
            out / "reviews.jsonl", progress.wrap(build.review_records(project, filters))
        ),
        "decisions": write_jsonl(
            out / "decisions.jsonl", progress.wrap(build.decision_records(project, filters))
        ),
    }

    pairs = set(
        build.record_judgments(project, filters).values_list(
            "rubric_version__rubric__name", "rubric_version__number"
        )
    )
    pairs |= set(
        decisions_for(project, filters).values_list(
            "rubric_version__rubric__name", "rubric_version__number"
        )
    )
    return {**counts, "rubric_versions": [{"rubric": n, "version": v} for n, v in sorted(pairs)]}


def _write_predictions(
    export: Export, filters: DecisionFilters, out: Path, progress: Progress, digests: Digests
) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    per_model = build.prediction_rows(export.project, filters, counts)
    files = {}
    for name, rows in per_model.items():
        filename = f"predictions-{build.slug(name)}.jsonl"
        files[name] = {
            "file": filename,
            "predictions": write_jsonl(out / filename, progress.wrap(iter(rows))),
        }
    return {
        "models": files,
        "ties_excluded": counts["ties_excluded"],
        "duplicates_replaced": counts["duplicates_replaced"],
    }


def _write_tasks(
    export: Export, filters: DecisionFilters, out: Path, progress: Progress, digests: Digests
) -> dict[str, Any]:
    return {
        "tasks": write_jsonl(
            out / "tasks.jsonl", progress.wrap(build.task_rows(export.project, filters))
        )
    }


WRITERS = {
    ExportKind.PREFERENCES: _write_preferences,
    ExportKind.RECORDS: _write_records,
    ExportKind.PREDICTIONS: _write_predictions,
    ExportKind.TASKS: _write_tasks,
}


def claim(export_id: int) -> bool:
    return (
        Export.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
            status=ExportStatus.RUNNING, progress=0
        )
        == 1
    )


def expected_rows(export: Export, filters: DecisionFilters) -> int:

    if export.kind == ExportKind.TASKS:
        return export.project.tasks.count()
    return decisions_for(export.project, filters).count()


def parent_dir(export: Export) -> Path:
    """exports_dir(), or the folder named in the options (`marlin export --out DIR`)."""
    out = (export.filters or {}).get("out")
    return Path(out) if out else exports_dir()


@task()
def write_export(export_id: int) -> None:
    """Write one export. A second run of the same id does nothing (the row is no longer queued)."""
    run_export(export_id)


def run_export(export_id: int, on_progress: Callable[[int], None] | None = None) -> None:
    """The job's body, callable in-process (the `marlin export` command shows on_progress)."""
    if not claim(export_id):
        logger.info("export %s is not queued; skipping", export_id)
        return
    export = Export.objects.select_related("project").get(pk=export_id)
    final = parent_dir(export) / directory_name(export)
    partial = final.with_name("." + final.name + ".partial")
    try:
        filters = DecisionFilters.from_mapping(export.filters or {})
        if final.exists():
            raise FileExistsError(f"{final} already exists; exports are never overwritten")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        progress = Progress(export_id, expected_rows(export, filters), on_progress)
        digests: Digests = {}  # files hashed as they were written
        counts = WRITERS[ExportKind(export.kind)](export, filters, partial, progress, digests)
        manifest = write_manifest(
            partial,
            {
                "export_id": export.pk,
                "kind": export.kind,
                "project": {"id": export.project_id, "name": export.project.name},
                "filters": {k: v for k, v in (export.filters or {}).items() if k != "out"},
                "counts": counts,
                "created_at": timezone.now().isoformat(),
                "marlin_version": marlin_version(),
                "layout": "docs/api.md#export-formats",
            },
            digests,
        )
        partial.rename(final)
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        Export.objects.filter(pk=export_id).update(
            status=ExportStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        logger.exception("export %s failed", export_id)
        return
    Export.objects.filter(pk=export_id).update(
        status=ExportStatus.DONE,
        progress=100,
        directory=str(final),
        manifest=manifest,
        finished_at=timezone.now(),
    )
