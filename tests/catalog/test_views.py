"""Catalog pages through the Django test client (real requests, real templates)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marlin.catalog.actions import do_add_repository, do_import_repositories
from marlin.catalog.jobs import mirror_repository
from marlin.catalog.models import MirrorStatus, Repository

pytestmark = pytest.mark.django_db


def _import(user, count: int, **fields: str) -> None:
    lines = ["url,language,tags"] + [
        f"https://github.com/org/repo{i:03d},{'Go' if i % 2 else 'Python'},"
        f"{'web' if i % 3 == 0 else 'cli'}"
        for i in range(count)
    ]
    do_import_repositories(user, "\n".join(lines), filename="seed.csv")


def test_an_author_sees_the_catalog_paginated_with_filters_kept_in_page_links(
    dave, client_for
) -> None:
    _import(dave, 200)
    client = client_for(dave)
    page1 = client.get(reverse("catalog:list"))
    assert page1.status_code == 200
    assert page1.content.count(b'href="/repositories/') >= 50
    assert len(page1.context["page"].object_list) == 50
    assert "org/repo000" in page1.content.decode()

    filtered = client.get(reverse("catalog:list"), {"language": "Go", "tag": "cli"})
    repos = list(filtered.context["page"].object_list)
    expected = Repository.objects.filter(language="Go", tags__name="cli").count()
    assert filtered.context["page"].paginator.count == expected and expected > 50
    assert all(r.language == "Go" and "cli" in [t.name for t in r.tags.all()] for r in repos)
    html = filtered.content.decode()
    assert "?language=Go&amp;tag=cli&amp;page=2" in html

    page2 = client.get(reverse("catalog:list"), {"language": "Go", "tag": "cli", "page": 2})
    assert all(r.language == "Go" for r in page2.context["page"].object_list)

    search = client.get(reverse("catalog:list"), {"q": "REPO11"})
    assert sorted(r.name for r in search.context["page"].object_list) == [
        f"org/repo11{i}" for i in range(10)
    ]

    failed = client.get(reverse("catalog:list"), {"status": "failed"})
    assert failed.context["page"].paginator.count == 0


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "mallory"])
def test_people_without_the_author_role_get_403(who, request, client_for, erin) -> None:
    repo = do_add_repository(erin, "https://github.com/a/b", mirror=False)
    client = client_for(request.getfixturevalue(who))
    for url in (
        reverse("catalog:list"),
        reverse("catalog:import"),
        reverse("catalog:add"),
        reverse("catalog:detail", args=[repo.pk]),
    ):
        assert client.get(url).status_code == 403
    assert client.post(reverse("catalog:mirror", args=[repo.pk])).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client) -> None:
    response = client.get(reverse("catalog:list"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_escapes_html_in_descriptions_and_errors(erin, client_for) -> None:
    repo = do_add_repository(
        erin, "https://github.com/a/b", description="<script>alert(1)</script>", mirror=False
    )
    Repository.objects.filter(pk=repo.pk).update(
        mirror_status=MirrorStatus.FAILED, last_error="fatal: <img src=x onerror=alert(2)>"
    )
    client = client_for(erin)
    detail = client.get(reverse("catalog:detail", args=[repo.pk])).content.decode()
    listing = client.get(reverse("catalog:list")).content.decode()
    for html in (detail, listing):
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script>alert(1)" not in detail and "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "badge badge-failed" in listing


def test_the_import_form_shows_counts_bad_lines_and_duplicates(dave, client_for) -> None:
    text = (
        "https://github.com/a/one\n--upload-pack=touch /tmp/x\n"
        "git@github.com:a/one.git\n<b>bold</b>\n"
    )
    client = client_for(dave)
    response = client.post(
        reverse("catalog:import"), {"file": SimpleUploadedFile("list.txt", text.encode())}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>1</strong> added" in html
    assert "<td>2</td><td>the URL starts with &#x27;-&#x27;" in html
    assert "<code>--upload-pack=touch /tmp/x</code>" in html
    assert "line 3 repeats line 1" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert Repository.objects.count() == 1

    pasted = client.post(reverse("catalog:import"), {"text": "fd::17\n"})
    assert "<strong>0</strong> added" in pasted.content.decode()
    assert "fd::" in pasted.content.decode()
    empty = client.post(reverse("catalog:import"), {})
    assert "Choose a file or paste a list." in empty.content.decode()


def test_the_import_form_refuses_nul_and_control_characters_with_their_line(
    dave, client_for
) -> None:
    text = (
        "url,language\n"
        "https://github.com/a/one,Python\n"
        "https://github.com/a/two,Py\x00thon\n"
        "https://github.com/a/three\x1b[2J,Go\n"
        "https://github.com/a/four,Go\n"
    )
    response = client_for(dave).post(
        reverse("catalog:import"), {"file": SimpleUploadedFile("list.csv", text.encode())}
    )
    html = response.content.decode()
    assert "<strong>2</strong> added" in html
    assert "<td>3</td><td>the line contains a NUL character (U+0000); remove it" in html
    assert "<td>4</td><td>the line contains the control character U+001B; remove it" in html
    assert "\x00" not in html and "\x1b" not in html  # shown by their codes instead
    assert sorted(Repository.objects.values_list("name", flat=True)) == ["a/four", "a/one"]


def test_the_add_form_rejects_a_dangerous_url_and_adds_a_good_one(dave, client_for) -> None:
    client = client_for(dave)
    bad = client.post(reverse("catalog:add"), {"url": "ext::sh -c touch% /tmp/x"})
    assert bad.status_code == 200 and "This URL cannot be used" in bad.content.decode()
    good = client.post(
        reverse("catalog:add"), {"url": " https://github.com/a/b.git ", "tags": "x; y"}
    )
    repo = Repository.objects.get()
    assert good.status_code == 302 and good["Location"] == reverse("catalog:detail", args=[repo.pk])
    assert sorted(repo.tags.values_list("name", flat=True)) == ["x", "y"]
    again = client.post(reverse("catalog:add"), {"url": "git@github.com:a/b"})
    assert "already in the catalog" in again.content.decode()


def test_the_detail_page_shows_branches_and_tags_and_the_mirror_button_queues_a_fetch(
    erin, settings, upstream: Path, client_for, tasks_immediate, django_capture_on_commit_callbacks
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    repo = do_add_repository(erin, str(upstream), mirror=False)
    client = client_for(erin)
    before = client.get(reverse("catalog:detail", args=[repo.pk])).content.decode()
    assert "Mirror now" in before and "Branches" not in before
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("catalog:mirror", args=[repo.pk]))
    assert response.status_code == 302
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.READY
    after = client.get(reverse("catalog:detail", args=[repo.pk])).content.decode()
    assert "Fetch now" in after and "feature/x" in after and "v1.0" in after
    assert client.get(reverse("catalog:mirror", args=[repo.pk])).status_code == 405
    mirror_repository.call(repo.pk)


def test_a_mirror_git_cannot_read_is_reported_without_its_path(
    erin, settings, upstream: Path, client_for
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    repo = do_add_repository(erin, str(upstream), mirror=False)
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    mirror = Path(repo.mirror_path)
    (mirror / "HEAD").write_text("not a ref\n")  # a damaged mirror
    html = client_for(erin).get(reverse("catalog:detail", args=[repo.pk])).content.decode()
    assert "Could not read the mirror's refs: git could not read it" in html
    assert str(mirror) not in html and str(settings.DATA_DIR) not in html
