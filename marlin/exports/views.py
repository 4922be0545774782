"""Export pages: create (queued as a job), follow progress, download files listed in the manifest.

Exports carry agent identities, so only admins and authors reach these pages; a file is served
only when its name is listed in the export's manifest, which rules out path tricks.
"""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.exports.actions import EXPORT_ROLES, ExportError, do_create_export
from marlin.exports.models import Export, ExportKind, ExportStatus
from marlin.permissions import role_required
from marlin.tasks.models import Project, TaskKind


class ExportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    kind = forms.ChoiceField(choices=ExportKind.choices)
    task_kind = forms.ChoiceField(choices=[("", "any")] + list(TaskKind.choices), required=False)
    since = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Decided on or after.",
    )
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Decided on or before.",
    )
    parquet = forms.BooleanField(
        required=False, initial=True, label="Also write Parquet (preference pairs)"
    )
    openai = forms.BooleanField(
        required=False,
        initial=True,
        label="Also write OpenAI's DPO fine-tuning layout (preference pairs)",
    )
    conversations = forms.BooleanField(
        required=False, label="Chosen/rejected as full agent conversations (preference pairs)"
    )


def file_path(export: Export, name: str) -> Path:
    """The path of a file the manifest lists, or Http404."""
    listed = {entry.get("name") for entry in (export.manifest or {}).get("files", [])}
    if export.status != ExportStatus.DONE or name not in listed or Path(name).name != name:
        raise Http404("No such file in this export.")
    directory = Path(export.directory).resolve()
    path = (directory / name).resolve()
    if path.parent != directory or not path.is_file():
        raise Http404("No such file in this export.")
    return path


@role_required(*EXPORT_ROLES)
def export_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None, initial={"project": request.GET.get("project")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        kind = data["kind"]
        filters = {"task_kind": data["task_kind"], "since": data["since"], "until": data["until"]}
        formats = ["jsonl"]
        if kind == ExportKind.PREFERENCES:
            formats += [name for name in ("parquet", "openai") if data[name]]
        try:
            export = do_create_export(
                request.user,
                data["project"],
                kind,
                filters,
                formats=formats,
                conversations=data["conversations"],
            )
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Export {export.pk} queued.")
            return redirect("exports:detail", export_id=export.pk)
    exports = Export.objects.select_related("project", "created_by")
    page = Paginator(exports, 50).get_page(request.GET.get("page"))
    return render(request, "exports/export_list.html", {"form": form, "page": page, "filters": ""})


@role_required(*EXPORT_ROLES)
def export_detail(request: AuthenticatedHttpRequest, export_id: int) -> HttpResponse:
    export = get_object_or_404(Export.objects.select_related("project", "created_by"), pk=export_id)
    running = export.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)
    return render(request, "exports/export_detail.html", {"export": export, "running": running})


@role_required(*EXPORT_ROLES)
def export_file(request: AuthenticatedHttpRequest, export_id: int, name: str) -> FileResponse:
    export = get_object_or_404(Export, pk=export_id)
    path = file_path(export, name)
    return FileResponse(
        open(path, "rb"), as_attachment=True, filename=name
    )  # FileResponse closes the file
