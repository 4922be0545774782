"""Creating exports: validate the options, create the row, record it, enqueue the job."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from marlin.accounts.models import User
from marlin.analytics.queries import DecisionFilters, FilterError
from marlin.audit.actions import record
from marlin.exports.jobs import write_export
from marlin.exports.models import Export, ExportKind
from marlin.exports.writers import PREFERENCE_FORMATS
from marlin.permissions import require_role
from marlin.tasks.models import Project

# Exports carry agent identities, so only roles allowed to see agent names may create or read them.
EXPORT_ROLES = ("admin", "author")


class ExportError(ValueError):
    """Options that cannot be exported; the message says what to change."""


def parse_formats(kind: str, formats: list[str] | str | None) -> list[str]:
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    if not formats:
        return list(PREFERENCE_FORMATS) if kind == ExportKind.PREFERENCES else ["jsonl"]
    unknown = sorted(set(formats) - set(PREFERENCE_FORMATS))
    if unknown:
        raise ExportError(f"unknown format(s) {', '.join(unknown)}; use jsonl and/or parquet")
    if kind != ExportKind.PREFERENCES and set(formats) != {"jsonl"}:
        raise ExportError(
            f"{kind} exports are written as JSON lines only; Parquet is for preferences"
        )
    return list(dict.fromkeys(formats))


def export_options(
    kind: str,
    filters: dict[str, Any] | None = None,
    *,
    formats: list[str] | str | None = None,
    conversations: bool = False,
    out: str = "",
) -> dict[str, Any]:
    """The JSON stored in Export.filters: the decision filters plus the writer's options."""
    if kind not in ExportKind.values:
        raise ExportError(f"kind must be one of {', '.join(ExportKind.values)}; got {kind!r}")
    try:
        parsed = DecisionFilters.from_mapping(filters or {})
    except FilterError as exc:
        raise ExportError(str(exc)) from None
    options = {k: v for k, v in parsed.as_dict().items() if k != "criterion"}
    options["formats"] = parse_formats(kind, formats)
    if conversations:
        if kind != ExportKind.PREFERENCES:
            raise ExportError("conversations apply to preference exports only")
        options["conversations"] = True
    if out:
        options["out"] = out
    return options


@transaction.atomic
def do_create_export(
    actor: User,
    project: Project,
    kind: str,
    filters: dict[str, Any] | None = None,
    *,
    formats: list[str] | str | None = None,
    conversations: bool = False,
    out: str = "",
    enqueue: bool = True,
) -> Export:
    require_role(actor, *EXPORT_ROLES)
    options = export_options(kind, filters, formats=formats, conversations=conversations, out=out)
    export = Export.objects.create(project=project, kind=kind, filters=options, created_by=actor)
    record(actor, "export.create", export, new={"kind": kind, "filters": options})
    if enqueue:
        transaction.on_commit(lambda: write_export.enqueue(export.pk))
    return export
