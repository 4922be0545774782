"""Load the demo: users for every role, the ledgerlite repository, a project and its tasks,
four imported agents with a decided history (marlin/demo/history.py) and two live agents that
the demo's scripted model server drives (marlin/demo/model_script.py).

Idempotent: running it twice leaves one copy of everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from marlin import paths
from marlin.accounts.actions import do_create_user
from marlin.accounts.models import ExpertProfile, User
from marlin.agents.actions import do_create_agent, do_set_agent_pool, do_update_agent
from marlin.agents.imports import do_import_predictions
from marlin.agents.models import Agent, Provider, Run
from marlin.catalog.models import MirrorStatus, Repository
from marlin.demo.history import load_history
from marlin.demo.model_script import CAREFUL, HASTY
from marlin.demo.sample_repo import (
    build_sample_repository,
    candidate_patches,
    head_commit,
    patch_for,
)
from marlin.demo.sample_repo_files import TASKS
from marlin.sandbox.gitutil import clone_mirror
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Project, Task, TaskStatus

DEMO_PASSWORD = "marlin-demo"  # noqa: S105 - printed by `marlin demo` for the demo users
DEMO_PROJECT = "Ledgerlite pilot"


@dataclass(frozen=True)
class DemoUser:
    username: str
    roles: tuple[str, ...]
    languages: tuple[str, ...] = ("python",)
    skills: tuple[str, ...] = ()


DEMO_USERS = [
    DemoUser("erin", ("admin",), skills=("operations",)),
    DemoUser("dave", ("author",), skills=("backend",)),
    DemoUser("alice", ("annotator",), skills=("backend", "security")),
    DemoUser("anna", ("annotator",), skills=("backend",)),
    # Two more experts, so agreement and the experts page compare four annotators.
    DemoUser("priya", ("annotator",), skills=("frontend",)),
    DemoUser("tomas", ("annotator",), skills=("data",)),
    DemoUser("bob", ("reviewer",), skills=("backend",)),
    DemoUser("brian", ("reviewer",), skills=("testing",)),
    DemoUser("carol", ("adjudicator", "reviewer"), skills=("security",)),
]


def _ensure_users() -> dict[str, User]:
    users = {}
    for spec in DEMO_USERS:
        user = User.objects.filter(username=spec.username).first()
        if user is None:
            user = do_create_user(
                None, spec.username, DEMO_PASSWORD, roles=list(spec.roles), reason="demo data"
            )
        ExpertProfile.objects.update_or_create(
            user=user,
            defaults={
                "languages": list(spec.languages),
                "skills": list(spec.skills),
                "years_experience": 8,
            },
        )
        users[spec.username] = user
    return users


def ensure_demo_repository() -> Repository:
    source = paths.data_dir() / "demo-src" / "ledgerlite"
    if not (source / ".git").exists():
        build_sample_repository(source)
    repository = Repository.objects.filter(name="demo/ledgerlite").first()
    mirror = paths.mirrors_dir() / "demo-ledgerlite.git"
    if not mirror.exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        clone_mirror(str(source), mirror, allow_local=True)
    if repository is None:
        repository = Repository.objects.create(
            url=str(source),
            normalized_url=f"local:{source}",
            name="demo/ledgerlite",
            host="local",
            is_local=True,
            language="python",
            license="MIT",
            description=(
                "A tiny double-entry ledger with exact money arithmetic (Marlin's demo repository)."
            ),
        )
    repository.mirror_status = MirrorStatus.READY
    repository.mirror_path = str(mirror)
    repository.last_fetched_at = repository.last_fetched_at or timezone.now()
    repository.save(update_fields=["mirror_status", "mirror_path", "last_fetched_at"])
    return repository


def demo_checks(task: dict) -> list[dict]:
    checks = [{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    if task.get("hidden_test"):
        checks.append(
            {
                "kind": "hidden-tests",
                "name": "hidden tests",
                "command": "python -m pytest -q",
                "test_patch": task["hidden_test_patch"],
                "fail_to_pass": task["fail_to_pass"],
                "pass_to_pass": task["pass_to_pass"],
            }
        )
    # Without paths, lint and security checks scan only the files the candidate changed.
    checks.append({"kind": "lint", "name": "ruff"})
    checks.append({"kind": "security", "name": "bandit"})
    return checks


@transaction.atomic
def load_demo(model_url: str | None = None) -> Project:
    """Load (or find) the demo. ``model_url`` is where the scripted model server listens
    (http://HOST:PORT); the two live agents are created or pointed there, and they make up
    the project's pool, so a new task is run by them."""
    users = _ensure_users()
    admin, author, reviewer = users["erin"], users["dave"], users["carol"]
    repository = ensure_demo_repository()
    project = Project.objects.filter(name=DEMO_PROJECT).first()
    if project is None:
        project = task_actions.do_create_project(
            admin,
            DEMO_PROJECT,
            description="Compare two coding agents on real maintenance work in **ledgerlite**.",
            overlap=2,
            min_rationale_chars=60,
        )
    source = paths.data_dir() / "demo-src" / "ledgerlite"
    commit = head_commit(source)
    for spec in TASKS:
        if Task.objects.filter(project=project, external_id=f"demo:{spec['key']}").exists():
            continue
        spec = dict(spec)
        if spec.get("hidden_test"):
            spec["hidden_test_patch"] = patch_for(
                source, {spec["hidden_test_path"]: spec["hidden_test"]}
            )
        task = task_actions.do_create_task(
            author,
            project,
            repository=repository,
            base_ref="main",
            base_commit=commit,
            title=spec["title"],
            kind=spec["kind"],
            prompt=spec["prompt"],
            setup_command="",
            checks=demo_checks(spec),
            external_id=f"demo:{spec['key']}",
            source="demo",
        )
        if spec["key"] != "format-tests":
            task_actions.do_approve_task(reviewer, task, comment="Clear and checkable.")
    _import_demo_candidates(author, project, source)
    load_history(users, project, repository, commit)
    if model_url:
        do_set_agent_pool(admin, project, ensure_live_agents(author, model_url), reason="demo")
    return project


@dataclass(frozen=True)
class LiveAgent:
    name: str
    provider: str
    model: str
    description: str


LIVE_AGENTS = [
    LiveAgent(
        "osprey-live",
        Provider.OPENAI,
        CAREFUL,
        "Marlin's own agent loop on an OpenAI-compatible API: the demo's scripted model "
        "server, which reads the code, writes a careful change, runs the tests and finishes.",
    ),
    LiveAgent(
        "petrel-live",
        Provider.ANTHROPIC,
        HASTY,
        "Marlin's own agent loop on the Anthropic Messages API: the demo's scripted model "
        "server, which writes a quick (sometimes wrong) change and finishes.",
    ),
]


def live_agent_settings(spec: LiveAgent, model_url: str) -> dict:
    base_url = f"{model_url}/v1" if spec.provider == Provider.OPENAI else model_url
    # No key: the scripted server asks for none (the providers send a placeholder).
    return {"model": spec.model, "base_url": base_url, "timeout_s": 30, "max_attempts": 2}


def ensure_live_agents(author: User, model_url: str) -> list[Agent]:
    """The two live agents, pointed at ``model_url``. An agent with runs keeps what it was run
    with, so a server on another address gets a new version of it."""
    agents = []
    for spec in LIVE_AGENTS:
        settings = live_agent_settings(spec, model_url)
        agent = Agent.objects.filter(name=spec.name).order_by("-created_at", "-pk").first()
        if agent is None:
            agent = do_create_agent(
                author,
                name=spec.name,
                provider=spec.provider,
                settings=settings,
                description=spec.description,
            )
        elif agent.settings != settings and not agent.runs.exists():
            agent = do_update_agent(
                author, agent, {"settings": settings}, reason="demo model server moved"
            )
        elif agent.settings != settings:
            versions = Agent.objects.filter(name=spec.name).count()
            agent = do_create_agent(
                author,
                name=spec.name,
                provider=spec.provider,
                settings=settings,
                version_label=str(versions + 1),
                description=spec.description,
            )
        agents.append(agent)
    return agents


# Two imported agents with opposite strengths, so the comparisons are worth judging: each
# solves some tasks well and gets others subtly wrong (see sample_repo_files.TASKS).
DEMO_AGENT_SOLUTIONS = {
    "atlas-coder": {"paren-negatives": "good", "no-eval": "flawed", "balance-at": "good"},
    "corvid-agent": {"paren-negatives": "flawed", "no-eval": "good", "balance-at": "flawed"},
}


def _import_demo_candidates(author: User, project: Project, source: Path) -> None:

    if Run.objects.filter(task__project=project).exists():
        return
    lines = []
    patches = {
        spec["key"]: candidate_patches(source, spec["key"]) for spec in TASKS if spec["candidates"]
    }
    for agent, choices in DEMO_AGENT_SOLUTIONS.items():
        for key, variant in choices.items():
            lines.append(
                json.dumps(
                    {
                        "instance_id": f"demo:{key}",
                        "model_name_or_path": agent,
                        "model_patch": patches[key][variant],
                    }
                )
            )
    report = do_import_predictions(
        author, project, "\n".join(lines) + "\n", filename="demo predictions"
    )
    if report.errors:
        raise RuntimeError(f"demo predictions did not import: {report.errors}")


def start_pages(project: Project) -> dict[str, str]:
    """Each demo user's first page: where their role's work (or the results) is."""
    pages = {
        "admin": reverse("analytics:leaderboard", args=[project.pk]),
        "author": reverse("tasks:list"),
        "annotator": reverse("review:queue"),
        "reviewer": reverse("pipeline:queue"),
        "adjudicator": reverse("pipeline:adjudication_queue"),
    }
    return {user.username: pages[user.roles[0]] for user in DEMO_USERS}


def demo_logins() -> list[tuple[str, str, str]]:
    return [(u.username, DEMO_PASSWORD, ", ".join(u.roles)) for u in DEMO_USERS]


def describe(project: Project) -> str:
    tasks = project.tasks.count()
    approved = project.tasks.filter(status=TaskStatus.APPROVED).count()
    comparisons = {
        state: count
        for state, count in project.comparisons.values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    }
    agents = Agent.objects.filter(runs__task__project=project).distinct().count()
    pool = ", ".join(str(a) for a in project.agent_pool.all()) or "none"
    shown = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(comparisons.items()))
    return (
        f"{project.name}: {tasks} tasks ({approved} approved), {agents} agents with runs, "
        f"comparisons: {shown}; agent pool: {pool}"
    )


def demo_source_path() -> Path:
    return paths.data_dir() / "demo-src" / "ledgerlite"
