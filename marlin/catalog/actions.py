"""Changes to the catalog. Each `do_*` runs in one transaction and writes one audit event;
an import of 10,000 lines is one event with its counts, not 10,000 events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from marlin.accounts.models import User
from marlin.audit.actions import record
from marlin.catalog.importer import ImportReport, RepoLine, parse_repository_list
from marlin.catalog.jobs import mirror_repository, outbound_policy
from marlin.catalog.models import Repository, Tag
from marlin.catalog.validation import InvalidRepositoryURL, validate_url
from marlin.permissions import require_role

BATCH_SIZE = 500
# SQLite allows 999 bound parameters per statement in old builds; stay well under it.
_LOOKUP_CHUNK = 500

ProgressCallback = Callable[[int, int], None]


class CatalogError(ValueError):
    """Something the user asked for cannot be done; the message says why."""


@dataclass
class ImportResult:
    report: ImportReport
    created: int = 0
    already_present: list[tuple[int, str]] = field(default_factory=list)  # (line_no, url)
    repository_ids: list[int] = field(default_factory=list)
    mirror_enqueued: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return {
            **self.report.counts,
            "created": self.created,
            "already_present": len(self.already_present),
        }


def allow_local() -> bool:
    return bool(settings.ALLOW_LOCAL_REPOSITORIES)


def do_add_repository(
    actor: User,
    url: str,
    *,
    language: str = "",
    stars: int | None = None,
    license: str = "",
    tags: Iterable[str] = (),
    description: str = "",
    mirror: bool = True,
) -> Repository:
    require_role(actor, "author")
    try:
        parsed = validate_url(url.strip(), allow_local=allow_local())
        outbound_policy().check(parsed)
    except InvalidRepositoryURL as exc:
        raise CatalogError(f"{url[:100]!r} cannot be added: {exc}") from None
    tag_names = sorted({tag.strip() for tag in tags if tag.strip()})
    with transaction.atomic():
        existing = Repository.objects.filter(normalized_url=parsed.normalized).first()
        if existing is not None:
            raise CatalogError(f"{existing.name} is already in the catalog (as {existing.url}).")
        repository = Repository.objects.create(
            url=parsed.url,
            normalized_url=parsed.normalized,
            name=parsed.name,
            host=parsed.host,
            is_local=parsed.is_local,
            language=language.strip()[:50],
            stars=stars,
            license=license.strip()[:100],
            description=description,
            created_by=actor,
        )
        if tag_names:
            repository.tags.set(_tags_by_name(tag_names).values())
        record(
            actor,
            "repository.add",
            repository,
            new={
                "url": parsed.url,
                "name": parsed.name,
                "language": repository.language,
                "tags": tag_names,
            },
        )
        if mirror:
            _enqueue_mirrors([repository.pk])
    return repository


def do_import_repositories(
    actor: User,
    text: str,
    *,
    filename: str = "",
    mirror: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a list (plain, CSV or JSON lines). Bad lines are reported and skipped; mirroring
    starts only when `mirror` is true, because thousands of clones must be asked for."""
    require_role(actor, "author")
    report = parse_repository_list(
        text, filename_hint=filename, allow_local=allow_local(), check=outbound_policy().check
    )
    result = ImportResult(report=report)
    try:
        with transaction.atomic():
            new_lines = _drop_present(report.good, result)
            created = _create_in_batches(actor, new_lines, batch_size, progress)
            _attach_tags(new_lines, created)
            result.created = len(created)
            result.repository_ids = list(created.values())
            result.mirror_enqueued = mirror and bool(created)
            record(
                actor,
                "repository.import",
                object_type="catalog.repository",
                object_id="",
                new={
                    "filename": filename,
                    "format": report.format,
                    **result.counts,
                    "mirror": mirror,
                },
            )
            if result.mirror_enqueued:
                _enqueue_mirrors(result.repository_ids)
    except IntegrityError:
        raise CatalogError(
            "another import added some of these repositories at the same time; run the import "
            "again (repositories already present are skipped)"
        ) from None
    return result


def do_request_mirror(actor: User, repository: Repository) -> None:
    """Queue a clone (or a fetch, when the mirror exists) of one repository."""
    require_role(actor, "author")
    with transaction.atomic():
        record(
            actor,
            "repository.mirror_requested",
            repository,
            old={"mirror_status": repository.mirror_status},
        )
        _enqueue_mirrors([repository.pk])


def _enqueue_mirrors(repository_ids: list[int]) -> None:
    def enqueue() -> None:
        for pk in repository_ids:
            mirror_repository.enqueue(pk)

    transaction.on_commit(enqueue)


def _drop_present(lines: list[RepoLine], result: ImportResult) -> list[RepoLine]:
    present: set[str] = set()
    keys = [line.normalized for line in lines]
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        present.update(
            Repository.objects.filter(normalized_url__in=chunk).values_list(
                "normalized_url", flat=True
            )
        )
    kept: list[RepoLine] = []
    for line in lines:
        if line.normalized in present:
            result.already_present.append((line.line_no, line.url))
        else:
            kept.append(line)
    return kept


def _create_in_batches(
    actor: User, lines: list[RepoLine], batch_size: int, progress: ProgressCallback | None
) -> dict[str, int]:
    """Insert the rows; return {normalized_url: pk}."""
    now = timezone.now()
    created_by = actor if getattr(actor, "pk", None) else None
    for start in range(0, len(lines), batch_size):
        batch = lines[start : start + batch_size]
        Repository.objects.bulk_create(
            [
                Repository(
                    url=line.url,
                    normalized_url=line.normalized,
                    name=line.name,
                    host=line.host,
                    is_local=line.is_local,
                    language=line.language,
                    stars=line.stars,
                    license=line.license,
                    created_at=now,
                    created_by=created_by,
                )
                for line in batch
            ]
        )
        if progress is not None:
            progress(start + len(batch), len(lines))
    # Read the ids back rather than trusting bulk_create to set them: not every backend
    # returns primary keys from a multi-row insert.
    ids: dict[str, int] = {}
    keys = [line.normalized for line in lines]
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        ids.update(
            Repository.objects.filter(
                normalized_url__in=keys[start : start + _LOOKUP_CHUNK]
            ).values_list("normalized_url", "pk")
        )
    return ids


def _tags_by_name(names: Iterable[str]) -> dict[str, Tag]:
    wanted = sorted(set(names))
    tags: dict[str, Tag] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        Tag.objects.bulk_create([Tag(name=name) for name in chunk], ignore_conflicts=True)
        tags.update((tag.name, tag) for tag in Tag.objects.filter(name__in=chunk))
    return tags


def _attach_tags(lines: list[RepoLine], ids: dict[str, int]) -> None:
    tag_names = {tag for line in lines for tag in line.tags}
    if not tag_names:
        return
    tags = _tags_by_name(tag_names)
    through = Repository.tags.through
    rows = [
        through(repository_id=ids[line.normalized], tag_id=tags[tag].pk)
        for line in lines
        for tag in line.tags
    ]
    through.objects.bulk_create(rows, batch_size=BATCH_SIZE)
