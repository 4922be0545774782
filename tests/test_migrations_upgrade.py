"""Upgrading a database of the previous release keeps every row.

The previous release had CheckResult in the agents app; now it lives in the checks app on the same
table (SeparateDatabaseAndState, with a RunPython that moves the content type so admin permissions
follow). The test migrates its database back to that release, puts a row in every table of
Marlin's apps through the historical models, migrates forward and reads everything back through
the current models; then it migrates back once more to show the downgrade keeps the check results.

Each xdist worker has its own test database, so this test migrating it back and forth does not
disturb tests in the other worker; the fixture migrates forward again whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps as current_apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps
from django.db.models import Model

from marlin.accounts.models import User
from marlin.agents.models import Candidate
from marlin.audit.keys import current_key
from marlin.audit.models import AuditChainHead, AuditEvent
from marlin.checks.models import CheckResult

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MARLIN_APPS = ("accounts", "agents", "audit", "catalog", "checks", "exports", "review", "tasks")

# The newest migration of each Marlin app in the previous release; the checks app did not exist.
PREVIOUS_RELEASE: list[tuple[str, str | None]] = [
    ("accounts", "0003_earning_project_earning_user_and_more"),
    ("agents", "0003_run_partner"),
    ("audit", "0001_initial"),
    ("catalog", "0001_initial"),
    ("checks", None),
    ("exports", "0001_initial"),
    ("review", "0002_pipeline_review_rounds"),
    ("tasks", "0001_initial"),
]

Rows = list[dict[str, Any]]


def _migrate(targets: list[tuple[str, str | None]]) -> StateApps:
    """Migrate the test database to `targets`; answer the models of the state it is then in."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    nodes = [(app, name) for app, name in targets if name is not None]
    # Django's own apps (auth, contenttypes...) stay at their newest migrations.
    nodes += [node for node in executor.loader.graph.leaf_nodes() if node[0] not in MARLIN_APPS]
    return executor.loader.project_state(nodes).apps


def _migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    if executor.migration_plan(latest):
        executor.migrate(latest)


def _marlin_models(apps: Any) -> list[type[Model]]:
    """Every model of Marlin's apps, the auto-created many-to-many tables included."""
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in MARLIN_APPS
    ]


def _rows(model: type[Model], columns: list[str] | None = None) -> Rows:
    return list(model._default_manager.order_by("pk").values(*(columns or [])))


def _table_counts() -> dict[str, int]:
    """Rows in every table of the database, Django's and django_tasks' too."""
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table == "django_migrations":
                continue
            # The names come from the database's own catalogue, quoted.
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    return counts


class Clock:
    """Distinct, timezone-aware times with microseconds, so a changed time shows."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=7, microseconds=1)
        return self.now


@dataclass
class Seeded:
    check_result_ids: list[int]
    candidate_id: int
    content_type_id: int
    permission_id: int


def _fill_previous_release(apps: StateApps) -> Seeded:
    """Rows in every table of the previous release, through its historical models."""
    later = Clock()
    users = _seed_accounts(apps, later)
    _seed_audit(apps, users, later)
    project, task, rubric_version = _seed_tasks(apps, users, later)
    runs, candidates = _seed_runs(apps, task, users, later)
    check_result_ids = _seed_check_results(apps, candidates, later)
    _seed_review(apps, task, runs, rubric_version, users, later)
    _seed_pay_and_export(apps, project, users, later)
    content_type_id, permission_id = _seed_admin_permission(apps, users["erin"])
    return Seeded(check_result_ids, candidates[0].pk, content_type_id, permission_id)


def _seed_accounts(apps: StateApps, later: Clock) -> dict[str, Any]:
    """alice annotates, bob reviews, carol adjudicates, dave authors, erin administers."""
    OldUser = apps.get_model("accounts", "User")
    OldRoleGrant = apps.get_model("accounts", "RoleGrant")
    users: dict[str, Any] = {}
    for username, role in [
        ("alice", "annotator"),
        ("bob", "reviewer"),
        ("carol", "adjudicator"),
        ("dave", "author"),
        ("erin", "admin"),
    ]:
        users[username] = OldUser.objects.create(
            username=username,
            password="!",
            email=f"{username}@example.com",
            first_name=username.title(),
            is_staff=role == "admin",
            date_joined=later(),
            last_login=later(),
        )
        OldRoleGrant.objects.create(
            user=users[username], role=role, granted_at=later(), granted_by=users["alice"]
        )
    apps.get_model("accounts", "ExpertProfile").objects.create(
        user=users["alice"],
        skills=["backend", "security"],
        languages=["python", "go"],
        years_experience=7,
        hourly_rate_cents=7200,
        bio="Reviews Django code.",
    )
    apps.get_model("accounts", "ApiToken").objects.create(
        user=users["alice"],
        name="laptop",
        prefix="mrl_abcdefgh",
        token_hash="a" * 64,
        created_at=later(),
        last_used_at=later(),
    )
    users["erin"].groups.add(apps.get_model("auth", "Group").objects.create(name="staff"))
    return users


def _seed_audit(apps: StateApps, users: dict[str, Any], later: Clock) -> None:
    apps.get_model("audit", "AuditChainHead").objects.create(last_hash="2" * 64, last_sequence=2)
    for sequence, verb in [(1, "task.created"), (2, "comparison.decided")]:
        apps.get_model("audit", "AuditEvent").objects.create(
            sequence=sequence,
            created_at=later(),
            actor=users["dave"],
            actor_name="dave",
            verb=verb,
            object_type=verb.split(".")[0],
            object_id=str(sequence),
            project_id=1,
            old_values={"status": "draft"},
            new_values={"status": "approved", "at": "2025-03-01T09:30:00Z"},
            reason="seeded by the upgrade test",
            prev_hash=f"{sequence - 1}" * 64,
            hash=f"{sequence}" * 64,
        )


def _seed_tasks(apps: StateApps, users: dict[str, Any], later: Clock) -> tuple[Any, Any, Any]:
    """A repository, a rubric, a project with its agent pool, an environment and a task."""
    repository = apps.get_model("catalog", "Repository").objects.create(
        url="https://github.com/example/shop",
        normalized_url="github.com/example/shop",
        name="example/shop",
        host="github.com",
        language="Python",
        stars=1234,
        license="MIT",
        description="A shop.",
        mirror_status="ready",
        mirror_path="/data/mirrors/example/shop.git",
        last_fetched_at=later(),
        mirror_started_at=later(),
        created_at=later(),
        created_by=users["dave"],
    )
    repository.tags.add(apps.get_model("catalog", "Tag").objects.create(name="web"))
    rubric = apps.get_model("tasks", "Rubric").objects.create(
        name="Code review", created_at=later()
    )
    rubric_version = apps.get_model("tasks", "RubricVersion").objects.create(
        rubric=rubric,
        number=1,
        criteria=[{"key": "correctness", "scale": [-1, 0, 1]}, {"key": "overall"}],
        change_note="First version.",
        created_by=users["dave"],
        created_at=later(),
    )
    project = apps.get_model("tasks", "Project").objects.create(
        name="Shop fixes",
        description="Bug fixes in the shop.",
        rubric=rubric,
        overlap=2,
        min_rationale_chars=40,
        hide_checks_until_drafted=True,
        pay_mode="hourly",
        hourly_rate_cents=6500,
        created_at=later(),
        created_by=users["dave"],
    )
    project.agent_pool.add(
        *[
            apps.get_model("agents", "Agent").objects.create(
                name=name,
                version_label="2025-02",
                provider="openai",
                settings={"model": name, "api_key_env": "OPENAI_API_KEY"},
                description=f"{name} agent",
                created_by=users["erin"],
                created_at=later(),
            )
            for name in ("gpt-a", "gpt-b")
        ]
    )
    apps.get_model("tasks", "Environment").objects.create(
        repository=repository,
        commit="f" * 40,
        setup_hash="e" * 64,
        setup_command="pip install -e .",
        status="ready",
        path="/data/environments/1",
        log="installed",
        duration_seconds=12.5,
        created_at=later(),
        finished_at=later(),
    )
    task = apps.get_model("tasks", "Task").objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit="f" * 40,
        title="Fix the cart total",
        prompt="The cart total ignores discounts.",
        kind="bug_fix",
        setup_command="pip install -e .",
        checks=[{"name": "tests", "kind": "pytest", "command": ["pytest", "-q"]}],
        status="approved",
        external_id="shop-1",
        created_by=users["dave"],
        created_at=later(),
    )
    return project, task, rubric_version


def _seed_runs(
    apps: StateApps, task: Any, users: dict[str, Any], later: Clock
) -> tuple[list[Any], list[Any]]:
    """A pair of partner runs of the project's two agents, one turn and candidate each."""
    runs, candidates = [], []
    for number, agent in enumerate(task.project.agent_pool.order_by("name"), start=1):
        run = apps.get_model("agents", "Run").objects.create(
            task=task,
            agent=agent,
            status="waiting",
            conversation=[{"role": "user", "content": task.prompt}],
            workspace_path=f"/data/workspaces/{number}",
            lease_expires_at=later(),
            created_at=later(),
            created_by=users["dave"],
        )
        turn = apps.get_model("agents", "Turn").objects.create(
            run=run,
            number=1,
            prompt=task.prompt,
            status="done",
            exit_status="submitted",
            requested_by=users["dave"],
            started_at=later(),
            finished_at=later(),
            created_at=later(),
        )
        apps.get_model("agents", "TrajectoryStep").objects.create(
            turn=turn,
            index=0,
            kind="tool",
            content={"command": ["sed", "-n", "1,20p", "cart.py"], "output": "def total():"},
            scrubbed_content={"command": ["sed"], "output": "[scrubbed]"},
            input_tokens=1200,
            output_tokens=80,
            latency_seconds=1.25,
            created_at=later(),
        )
        candidate = apps.get_model("agents", "Candidate").objects.create(
            turn=turn,
            patch=f"--- a/cart.py\n+++ b/cart.py\n@@ -1 +1 @@\n-old\n+new {number}\n",
            files_changed=1,
            lines_added=1,
            lines_removed=1,
            input_tokens=12000 + number,
            output_tokens=900,
            cost_usd=Decimal("0.123456"),
            duration_seconds=48.5,
            fingerprints=[{"kind": "model_name", "match": "gpt", "line": 3}],
            scrubbed_patch="--- a/cart.py\n+++ b/cart.py\n",
            created_at=later(),
        )
        runs.append(run)
        candidates.append(candidate)
    runs[0].partner, runs[1].partner = runs[1], runs[0]
    for run in runs:
        run.save(update_fields=["partner"])
    return runs, candidates


def _seed_check_results(apps: StateApps, candidates: list[Any], later: Clock) -> list[int]:
    """Check results as the agents app stored them: two for the first candidate, one for the
    second; every field away from its default."""
    ids = []
    for candidate, index, name, kind, status in [
        (candidates[0], 0, "tests", "pytest", "passed"),
        (candidates[0], 1, "lint", "ruff", "failed"),
        (candidates[1], 0, "tests", "pytest", "timed_out"),
    ]:
        result = apps.get_model("agents", "CheckResult").objects.create(
            candidate=candidate,
            check_index=index,
            name=name,
            kind=kind,
            status=status,
            passed=10 - index,
            failed=index,
            errors=index + 2,
            skipped=3,
            tests=[{"name": "test_total", "outcome": status}],
            findings=[{"path": "cart.py", "line": 2, "message": "unused import"}],
            log=f"log of {name}",
            detail=f"detail of {name}",
            limits={"timeout_seconds": 600, "memory_mb": 2048},
            duration_seconds=3.5 + index,
            attempts=index + 1,
            lease_expires_at=later(),
            created_at=later(),
            finished_at=later(),
        )
        ids.append(result.pk)
    return ids


def _seed_review(
    apps: StateApps,
    task: Any,
    runs: list[Any],
    rubric_version: Any,
    users: dict[str, Any],
    later: Clock,
) -> None:
    """A decided comparison: alice's released claim and judgment, bob's review, carol's decision."""
    comparison = apps.get_model("review", "Comparison").objects.create(
        public_id="cmp-upgrade-1",
        project=task.project,
        task=task,
        run_a=runs[0],
        run_b=runs[1],
        state="decided",
        turn_count=1,
        created_at=later(),
    )
    apps.get_model("review", "Claim").objects.create(
        comparison=comparison,
        annotator=users["alice"],
        claimed_at=later(),
        last_seen_at=later(),
        released_at=later(),
    )
    judgment = apps.get_model("review", "Judgment").objects.create(
        comparison=comparison,
        annotator=users["alice"],
        rubric_version=rubric_version,
        status="accepted",
        ratings={"correctness": -1},
        overall=-2,
        rationale="A handles discounts; B does not.",
        confidence=4,
        comments=[{"side": "b", "path": "cart.py", "line": 2, "text": "misses discounts"}],
        turn_notes={"1": "both tried"},
        turn_judged=1,
        active_seconds=840,
        wall_seconds=1500,
        draft_revision=3,
        started_at=later(),
        submitted_at=later(),
    )
    apps.get_model("review", "Review").objects.create(
        judgment=judgment,
        reviewer=users["bob"],
        verdict="agree",
        per_criterion={"correctness": "agree"},
        reason="Checked the patch.",
        active_seconds=300,
        created_at=later(),
        rubric_version=rubric_version,
        superseded_at=later(),
    )
    apps.get_model("review", "Decision").objects.create(
        comparison=comparison,
        source="adjudication",
        overall=-2,
        ratings={"correctness": -1},
        rationale="A is right.",
        rubric_version=rubric_version,
        decided_by=users["carol"],
        decided_at=later(),
        active_seconds=200,
    )


def _seed_pay_and_export(
    apps: StateApps, project: Any, users: dict[str, Any], later: Clock
) -> None:
    """alice's earning for her judgment and erin's adjustment of it; erin's export."""
    Earning = apps.get_model("accounts", "Earning")
    earning = Earning.objects.create(
        user=users["alice"],
        project=project,
        kind="judgment",
        source_type="judgment",
        source_id="1",
        amount_cents=2500,
        active_seconds=900,
        created_at=later(),
    )
    Earning.objects.create(
        user=users["alice"],
        project=project,
        kind="adjustment",
        source_type="judgment",
        source_id="1",
        amount_cents=-500,
        reason="Paid twice for the same minutes.",
        adjusts=earning,
        created_by=users["erin"],
        created_at=later(),
    )
    apps.get_model("exports", "Export").objects.create(
        project=project,
        kind="preferences",
        filters={"state": "decided"},
        status="done",
        progress=100,
        directory="/data/exports/1",
        manifest={"files": {"preferences.jsonl": "d" * 64}},
        created_by=users["erin"],
        created_at=later(),
        finished_at=later(),
    )


def _seed_admin_permission(apps: StateApps, erin: Any) -> tuple[int, int]:
    """The content type and permission post_migrate made for agents.CheckResult; erin may view
    check results in the admin."""
    content_type, _ = apps.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="agents", model="checkresult"
    )
    permission, _ = apps.get_model("auth", "Permission").objects.get_or_create(
        content_type=content_type,
        codename="view_checkresult",
        defaults={"name": "Can view check result"},
    )
    erin.user_permissions.add(permission)
    return content_type.pk, permission.pk


@dataclass
class Upgrade:
    """What the previous release held (every Marlin table's rows, every table's row count)."""

    seeded: Seeded
    rows_before: dict[str, Rows]
    counts_before: dict[str, int]


@pytest.fixture
def upgraded(transactional_db) -> Iterator[Upgrade]:
    """A database of the previous release with a row in every table, upgraded to the newest
    migrations. It is at the newest migrations again afterwards, whatever the test did."""
    ContentType.objects.clear_cache()
    try:
        old_apps = _migrate(PREVIOUS_RELEASE)
        old_models = _marlin_models(old_apps)
        seeded = _fill_previous_release(old_apps)
        empty = [m._meta.label for m in old_models if not m._default_manager.exists()]
        assert empty == [], f"the upgrade test puts no row in: {', '.join(empty)}"
        upgrade = Upgrade(
            seeded=seeded,
            rows_before={m._meta.db_table: _rows(m) for m in old_models},
            counts_before=_table_counts(),
        )
        _migrate_to_latest()
        ContentType.objects.clear_cache()
        yield upgrade
    finally:
        _migrate_to_latest()
        ContentType.objects.clear_cache()


def test_upgrading_from_the_previous_release_keeps_every_row(upgraded: Upgrade) -> None:
    # The keyed audit chain appends one event after the old ones (the seal) and moves the
    # chain head to it (the next test); every other row is as it was.
    sealed = upgraded.counts_before["audit_auditevent"] + 1
    # Work sessions (server-measured time) are new: the old release's work has none; nor had
    # anyone logged in through single sign-on.
    new_tables = {"review_worksession": 0, "accounts_ssoidentity": 0}
    assert _table_counts() == {**upgraded.counts_before, "audit_auditevent": sealed, **new_tables}
    by_table = {m._meta.db_table: m for m in _marlin_models(current_apps)}
    assert set(upgraded.rows_before) <= set(by_table), "a table lost its model"
    for table, rows in upgraded.rows_before.items():
        if table == "audit_auditchainhead":
            continue
        now = _rows(by_table[table], list(rows[0]))
        assert now[: len(rows)] == rows, f"rows of {table} changed"


def test_the_upgrade_seals_the_unkeyed_audit_events_with_a_keyed_one(upgraded: Upgrade) -> None:
    old_events = upgraded.rows_before["audit_auditevent"]
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.algorithm for e in events] == ["sha256"] * len(old_events) + ["hmac-sha256"]
    seal = events[-1]
    assert (seal.verb, seal.sequence, seal.prev_hash) == (
        "audit.keyed",
        old_events[-1]["sequence"] + 1,
        old_events[-1]["hash"],
    )
    assert seal.key_id == current_key().id and seal.compute_hash() == seal.hash
    head = AuditChainHead.objects.get()
    assert (head.last_sequence, head.last_hash) == (seal.sequence, seal.hash)


def test_the_checks_app_finds_the_old_check_results_whole(upgraded: Upgrade) -> None:
    old_results = {row["id"]: row for row in upgraded.rows_before["agents_checkresult"]}
    results = CheckResult.objects.select_related("candidate__turn__run__agent")
    assert sorted(result.pk for result in results) == sorted(upgraded.seeded.check_result_ids)
    for result in results:
        fields = {f.attname: getattr(result, f.attname) for f in CheckResult._meta.concrete_fields}
        # Columns added since are at their defaults; every old column kept its value.
        assert fields.pop("required") == []
        assert fields == old_results[result.pk]
        assert result.candidate.turn.run.agent.name in ("gpt-a", "gpt-b")
    candidate = Candidate.objects.get(pk=upgraded.seeded.candidate_id)
    assert [result.name for result in candidate.check_results.all()] == ["tests", "lint"]

    # Same table, so new rows continue the ids (on PostgreSQL: the same sequence).
    added = CheckResult.objects.create(
        candidate=candidate, check_index=2, name="types", kind="mypy"
    )
    assert added.pk > max(upgraded.seeded.check_result_ids)


def test_the_admin_permission_follows_check_results_to_the_checks_app(upgraded: Upgrade) -> None:
    content_type = ContentType.objects.get(pk=upgraded.seeded.content_type_id)
    assert (content_type.app_label, content_type.model) == ("checks", "checkresult")
    assert ContentType.objects.get_for_model(CheckResult) == content_type
    assert not ContentType.objects.filter(app_label="agents", model="checkresult").exists()
    permission = Permission.objects.get(pk=upgraded.seeded.permission_id)
    assert (permission.content_type, permission.codename) == (content_type, "view_checkresult")
    assert User.objects.get(username="erin").has_perm("checks.view_checkresult")
    assert not User.objects.get(username="alice").has_perm("checks.view_checkresult")


def test_downgrading_again_gives_the_agents_app_its_check_results_back(upgraded: Upgrade) -> None:
    old_apps = _migrate(PREVIOUS_RELEASE)

    assert _table_counts() == upgraded.counts_before
    old_check_results = old_apps.get_model("agents", "CheckResult")
    assert _rows(old_check_results) == upgraded.rows_before["agents_checkresult"]
    content_type = old_apps.get_model("contenttypes", "ContentType").objects.get(
        pk=upgraded.seeded.content_type_id
    )
    assert (content_type.app_label, content_type.model) == ("agents", "checkresult")
