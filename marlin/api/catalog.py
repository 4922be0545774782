"""Repositories: list, add one, import a list (plain, CSV or JSON lines)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Field, Path, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from marlin.api.auth import require
from marlin.api.types import MAX_ID, Pagination, filter_param
from marlin.catalog.actions import CatalogError, do_add_repository, do_import_repositories
from marlin.catalog.models import Repository

router = Router(tags=["repositories"])
CATALOG_ROLES = ("author",)


class RepositoryOut(Schema):
    id: int
    url: str
    name: str
    host: str
    language: str
    stars: int | None
    license: str
    description: str
    mirror_status: str
    last_fetched_at: datetime | None
    tags: list[str]

    @staticmethod
    def resolve_tags(obj: Repository) -> list[str]:
        return [t.name for t in obj.tags.all()]


class RepositoryIn(Schema):
    url: str = Field(..., min_length=1, max_length=500)
    language: str = Field("", max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)
    description: str = Field("", max_length=5000)
    mirror: bool = True


# Named apart from the task imports' ImportIn/ImportOut: OpenAPI schemas share one namespace,
# and the same name made this endpoint's documented answer the task import's.
class RepositoryImportIn(Schema):
    text: str = Field(
        ...,
        max_length=20_000_000,
        description="The list: one URL a line, CSV with a header, or JSON lines.",
    )
    filename: str = Field("", max_length=200, description="Helps detect the format (.csv, .jsonl).")
    mirror: bool = False


class BadLineOut(Schema):
    line: int
    reason: str


class RepositoryImportOut(Schema):
    format: str
    created: int
    already_present: int
    bad: list[BadLineOut]
    repository_ids: list[int]
    mirror_enqueued: bool


@router.get("", response=list[RepositoryOut], summary="List repositories")
@paginate(Pagination)
def list_repositories(
    request: HttpRequest,
    q: str = filter_param(),
    language: str = filter_param(),
    status: str = filter_param(),
) -> QuerySet[Repository]:
    require(request, *CATALOG_ROLES)
    qs = Repository.objects.prefetch_related("tags").order_by("name", "pk")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(url__icontains=q))
    if language:
        qs = qs.filter(language__iexact=language)
    if status:
        qs = qs.filter(mirror_status=status)
    return qs


# An int converter, so that "/import" reaches the import below instead of answering 405 here.
@router.get("/{int:repository_id}", response=RepositoryOut, summary="Get a repository")
def get_repository(
    request: HttpRequest, repository_id: int = Path(..., ge=1, le=MAX_ID)
) -> Repository:
    require(request, *CATALOG_ROLES)
    return Repository.objects.prefetch_related("tags").get(pk=repository_id)


@router.post("", response={201: RepositoryOut}, summary="Add a repository (and queue its mirror)")
def add_repository(request: HttpRequest, body: RepositoryIn) -> Status[Repository]:
    user = require(request, *CATALOG_ROLES)
    try:
        repository = do_add_repository(
            user,
            body.url,
            language=body.language,
            tags=body.tags,
            description=body.description,
            mirror=body.mirror,
        )
    except CatalogError as exc:
        raise HttpError(422, str(exc)) from None
    return Status(201, repository)


@router.post("/import", response=RepositoryImportOut, summary="Import a list of repositories")
def import_repositories(request: HttpRequest, body: RepositoryImportIn) -> dict:
    user = require(request, *CATALOG_ROLES)
    try:
        result = do_import_repositories(user, body.text, filename=body.filename, mirror=body.mirror)
    except CatalogError as exc:
        raise HttpError(422, str(exc)) from None
    return {
        "format": result.report.format,
        "created": result.created,
        "already_present": len(result.already_present),
        "bad": [{"line": b.line_no, "reason": b.reason} for b in result.report.bad[:1000]],
        "repository_ids": result.repository_ids,
        "mirror_enqueued": result.mirror_enqueued,
    }
