"""Catalog pages: the list with filters, adding one repository, importing a list, and a
repository's own page. Only authors and admins see them; changes go through actions.py."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.catalog import actions
from marlin.catalog.forms import AddRepositoryForm, FilterForm, ImportForm
from marlin.catalog.mirror import Ref, is_mirror, list_refs
from marlin.catalog.models import Repository
from marlin.permissions import role_required
from marlin.sandbox.gitutil import GitError

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
ROLES = ("author",)


@role_required(*ROLES)
def repository_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = FilterForm(request.GET or None)
    repositories = Repository.objects.prefetch_related("tags").order_by("name", "pk")
    current: dict[str, str] = {}
    if form.is_valid():
        current = {key: value for key, value in form.cleaned_data.items() if value}
        if "q" in current:
            repositories = repositories.filter(name__icontains=current["q"])
        if "language" in current:
            repositories = repositories.filter(language__iexact=current["language"])
        if "tag" in current:
            repositories = repositories.filter(tags__name=current["tag"])
        if "status" in current:
            repositories = repositories.filter(mirror_status=current["status"])
    page = Paginator(repositories, PAGE_SIZE).get_page(request.GET.get("page"))
    languages = (
        Repository.objects.exclude(language="")
        .order_by("language")
        .values_list("language", flat=True)
        .distinct()
    )
    return render(
        request,
        "catalog/repository_list.html",
        {
            "form": form,
            "page": page,
            "current": current,
            "filters": urlencode(current),
            "languages": languages,
        },
    )


@role_required(*ROLES)
def repository_add(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AddRepositoryForm(
        request.POST if request.method == "POST" else None, initial={"mirror": True}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            repository = actions.do_add_repository(
                request.user,
                data["url"],
                language=data["language"],
                tags=form.tag_list(),
                mirror=data["mirror"],
            )
        except actions.CatalogError as exc:
            form.add_error("url", str(exc))
        else:
            messages.success(request, f"{repository.name} added.")
            return redirect("catalog:detail", pk=repository.pk)
    return render(request, "catalog/repository_add.html", {"form": form})


@role_required(*ROLES)
def repository_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    bound = request.method == "POST"
    form = ImportForm(request.POST if bound else None, request.FILES if bound else None)
    result = None
    error = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = actions.do_import_repositories(
                request.user, data["content"], filename=data["filename"], mirror=data["mirror"]
            )
        except actions.CatalogError as exc:
            error = str(exc)
    return render(
        request,
        "catalog/repository_import.html",
        {
            "form": form if result is None else ImportForm(),
            "result": result,
            "error": error,
            "allow_local": settings.ALLOW_LOCAL_REPOSITORIES,
        },
    )


@role_required(*ROLES)
def repository_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    repository = get_object_or_404(Repository.objects.prefetch_related("tags"), pk=pk)
    refs: list[Ref] = []
    refs_error = ""
    if repository.is_mirrored and is_mirror(Path(repository.mirror_path)):
        try:
            refs = list_refs(Path(repository.mirror_path))
        except GitError as exc:
            # git's words name the mirror's path on the server: the log gets them, not the page.
            logger.warning("reading the refs of repository %s failed: %s", repository.pk, exc)
            refs_error = "git could not read it; mirror the repository again"
    return render(
        request,
        "catalog/repository_detail.html",
        {
            "repository": repository,
            "branches": [ref for ref in refs if ref.kind == "branch"],
            "tags": [ref for ref in refs if ref.kind == "tag"],
            "refs_error": refs_error,
        },
    )


@require_POST
@role_required(*ROLES)
def repository_mirror(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    repository = get_object_or_404(Repository, pk=pk)
    actions.do_request_mirror(request.user, repository)
    verb = "fetch" if repository.is_mirrored else "mirror"
    messages.success(request, f"A {verb} of {repository.name} was queued.")
    return redirect("catalog:detail", pk=repository.pk)
