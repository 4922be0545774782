"""Environments: a task's setup command, run once per (repository, commit, setup) in the sandbox.

The setup runs in a checkout of the commit that is kept: `environments_dir()/<id>/tree` (a base,
`marlin.sandbox.workspace.create_base`, with git metadata the build can read), with `/env` bound
writable from `environments_dir()/<id>/env`, so `python3 -m venv /env && /env/bin/pip install
-e .` works. Afterwards the tree, build outputs included, is the read-only base of every check's
workspace (a copy-on-write layer over it), and `/env` is mounted read-only (first on PATH).
A task may also carry an environment spec (`Task.environment_spec`, the fields of a SWE-bench
spec): then the setup first makes a venv at `/env` with uv on the Python version the spec names
(found on the worker: marlin.sandbox.interpreters, mounted read-only) and installs what the spec
lists (marlin.grading.environment); steps that need the system package manager are listed on
the row (`unsupported`) and shown on the task page.
The Environment row is the truth: a build claims it atomically and holds a lease it renews while
it works, so a second build of the same row does nothing and a build whose worker died is taken
over once the lease has expired.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from marlin.audit.actions import record
from marlin.catalog.jobs import local_mirror
from marlin.catalog.validation import InvalidRepositoryURL
from marlin.grading.environment import plan_setup
from marlin.grading.spec import EnvironmentSpec
from marlin.leases import heartbeat, lease_until
from marlin.paths import environments_dir
from marlin.sandbox import ExecResult, Limits, Mount, SandboxError, run
from marlin.sandbox.egress import DEFAULT_REGISTRIES, Egress, registry_allow_list
from marlin.sandbox.gitutil import GitError
from marlin.sandbox.interpreters import (
    UV_PATH,
    InterpreterNotFound,
    find_interpreter,
    interpreter_mounts,
    parse_interpreter_setting,
    uv_mount,
)
from marlin.sandbox.workspace import BASE_INFO, WorkspaceError, base_mounts, create_base
from marlin.tasks.models import Environment, EnvironmentStatus, Task

logger = logging.getLogger(__name__)

ENV_PATH = "/env"
# Inside an environment's directory: the venv mounted at ENV_PATH (the built tree and its git
# directory are create_base's "tree" and "git").
ENV_DIR = "env"
# Beside them, written by the worker (the setup cannot reach it): what else checks must mount,
# such as the interpreter the venv links to.
MOUNTS_FILE = "mounts.json"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SETUP_TIMEOUT_SECONDS = 1800
# pip and compilers want more room than a check does.
SETUP_LIMITS = Limits(memory_mb=4096, max_processes=512, tmp_size_mb=2048)
LOG_LIMIT_BYTES = 64 * 1024
_WAIT_POLL_SECONDS = 0.5


def setup_hash(setup_command: str, spec: dict | None = None) -> str:
    """What identifies a build besides the repository and commit: the setup command, and the
    environment spec when there is one (canonical JSON; without one the hash is the command's,
    as before specs existed)."""
    text = setup_command.strip()
    if spec:
        text += "\0" + json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def environment_for(task: Task) -> Environment:
    """The task's environment row, created if needed. An empty setup command (and no spec)
    needs no build: its environment is ready at once and mounts nothing."""
    command = task.setup_command.strip()
    spec = task.environment_spec or {}
    key = {
        "repository_id": task.repository_id,
        "commit": task.base_commit,
        "setup_hash": setup_hash(command, spec),
    }
    existing = Environment.objects.filter(**key).first()
    if existing is not None:
        return existing
    defaults: dict[str, object] = {"setup_command": command, "spec": spec}
    if not command and not spec:
        defaults.update(
            status=EnvironmentStatus.READY,
            finished_at=timezone.now(),
            duration_seconds=0.0,
            log="No setup command: nothing to build.",
        )
    try:
        with transaction.atomic():
            environment = Environment.objects.create(**key, **defaults)
            record(
                None,
                "environment.create",
                environment,
                new={"commit": task.base_commit, "status": environment.status},
            )
            return environment
    except IntegrityError:
        return Environment.objects.get(**key)  # another worker created it first


def environment_mount(environment: Environment) -> Mount | None:
    """`/env` read-only for checks, or None when the environment has nothing to mount."""
    if environment.status != EnvironmentStatus.READY or not environment.path:
        return None
    path = Path(environment.path)
    if (path / BASE_INFO).is_file():
        path = path / ENV_DIR
    # (An environment built before bases existed is the venv directory itself.)
    return Mount(source=path, target=ENV_PATH, writable=False) if path.is_dir() else None


def environment_mounts(environment: Environment) -> list[Mount]:
    """Everything a check mounts from the environment: `/env`, and the interpreter its venv
    links to when that lives outside /usr."""
    mount = environment_mount(environment)
    if mount is None:
        return []
    extra = Path(environment.path) / MOUNTS_FILE
    listed = json.loads(extra.read_text()) if extra.is_file() else []
    return [mount, *(Mount(source=Path(m["source"]), target=m["target"]) for m in listed)]


def environment_base(environment: Environment) -> Path | None:
    """The built tree checks layer their workspaces over, or None (no setup, or built before
    bases existed): then a check gets a fresh worktree of the commit."""
    if environment.status != EnvironmentStatus.READY or not environment.path:
        return None
    path = Path(environment.path)
    return path if (path / BASE_INFO).is_file() else None


def claim_environment(environment_id: int) -> bool:
    """Move a pending or failed environment (or one whose builder's lease expired) to building."""
    now = timezone.now()
    claimable = Q(status__in=[EnvironmentStatus.PENDING, EnvironmentStatus.FAILED]) | Q(
        status=EnvironmentStatus.BUILDING, lease_expires_at__lt=now
    )
    claimed = (
        Environment.objects.filter(pk=environment_id)
        .filter(claimable)
        .update(
            status=EnvironmentStatus.BUILDING,
            lease_expires_at=lease_until(settings.JOB_LEASE_SECONDS),
            log="",
            finished_at=None,
        )
    )
    return claimed == 1


@task()
def build_environment(environment_id: int) -> str:
    """Build the environment unless another worker holds it; return its status afterwards."""
    if claim_environment(environment_id):
        _build_claimed(environment_id)
    return (
        Environment.objects.filter(pk=environment_id).values_list("status", flat=True).first() or ""
    )


def ready_environment(task: Task, *, wait_seconds: float | None = None) -> Environment:
    """The task's environment once it is ready or has failed: built here if nobody else is
    building it, otherwise waited for (a dead builder's lease runs out and it is built here)."""
    environment = environment_for(task)
    limit = (
        wait_seconds
        if wait_seconds is not None
        else SETUP_TIMEOUT_SECONDS + 2 * settings.JOB_LEASE_SECONDS
    )
    deadline = time.monotonic() + limit
    while True:
        environment.refresh_from_db()
        if environment.status == EnvironmentStatus.PENDING and claim_environment(environment.pk):
            _build_claimed(environment.pk)
            continue
        if environment.status in (EnvironmentStatus.READY, EnvironmentStatus.FAILED):
            return environment
        if environment.status == EnvironmentStatus.BUILDING and claim_environment(environment.pk):
            _build_claimed(environment.pk)  # the previous builder's lease expired
            continue
        if time.monotonic() > deadline:
            return environment
        time.sleep(_WAIT_POLL_SECONDS)


def _build_claimed(environment_id: int) -> None:
    environment = Environment.objects.select_related("repository").get(pk=environment_id)
    target = environments_dir() / str(environment.pk)
    started = time.monotonic()
    status: str = EnvironmentStatus.FAILED
    log = ""
    try:
        with heartbeat(
            Environment.objects.filter(pk=environment.pk, status=EnvironmentStatus.BUILDING),
            lease_seconds=settings.JOB_LEASE_SECONDS,
            on_thread_exit=connections.close_all,
        ):
            status, log, unsupported = _run_setup(environment, target)
    except BaseException as exc:
        # Release the row even on a crash of ours, so it is not stuck until the lease ends.
        log = f"internal error while building the environment: {exc!r}"
        _finish(environment.pk, EnvironmentStatus.FAILED, log, target, started)
        raise
    _finish(environment.pk, status, log, target, started, unsupported)


def _run_setup(environment: Environment, target: Path) -> tuple[str, str, list[str]]:
    repository = environment.repository
    try:
        # On a worker of another machine the mirror is cloned here first (catalog.jobs).
        mirror = local_mirror(repository)
    except (GitError, InvalidRepositoryURL) as exc:
        return (
            EnvironmentStatus.FAILED,
            f"the repository {repository.name} could not be mirrored on this worker: {exc}",
            [],
        )
    if mirror is None:
        return (
            EnvironmentStatus.FAILED,
            (
                f"the repository {repository.name} has no mirror yet; mirror it from its catalog "
                "page and build again"
            ),
            [],
        )
    network = _network_allowed(environment)
    try:
        script, unsupported, extra_mounts = _setup_script(environment, network=network)
    except (InterpreterNotFound, ValueError) as exc:
        return EnvironmentStatus.FAILED, f"the environment cannot be built here: {exc}", []
    # A half-built environment from a worker that died is worthless: start from empty.
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    venv = target / ENV_DIR
    venv.mkdir()
    try:
        # The checkout the setup builds in is kept: it becomes the base of every check's
        # workspace, so what the build writes into the tree (a generated _version.py, compiled
        # extensions, an egg-link) is there when the checks run.
        tree = create_base(mirror, environment.commit, target)
        if extra_mounts:
            (target / MOUNTS_FILE).write_text(
                json.dumps([{"source": str(m.source), "target": m.target} for m in extra_mounts])
            )
        result = run(
            ["bash", "-c", script],
            workdir=tree,
            env={"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **_system_ca_env()},
            timeout=SETUP_TIMEOUT_SECONDS,
            limits=SETUP_LIMITS,
            # Package registries only, through the egress proxy (never the host's network).
            network="proxy" if network else "none",
            egress=_setup_egress(environment) if network else None,
            mounts=[
                Mount(source=venv, target=ENV_PATH, writable=True),
                *base_mounts(target),
                *extra_mounts,
                *([uv_mount()] if environment.spec else []),
            ],
        )
    except (SandboxError, GitError, WorkspaceError, InterpreterNotFound, OSError) as exc:
        return EnvironmentStatus.FAILED, f"the setup could not be started: {exc}", unsupported
    log = _setup_log(result) + _network_summary(result)
    if unsupported:
        log = "".join(f"[not run here: {step}]\n" for step in unsupported) + log
    status = EnvironmentStatus.READY if result.ok else EnvironmentStatus.FAILED
    return status, cap_log(log), unsupported


def _system_ca_env() -> dict[str, str]:
    """pip in a venv trusts certifi's certificates, not the system's; the sandbox shows the
    system's (/etc/ssl/certs), so point pip and Python at them: a build then trusts what the host
    trusts (a company's TLS-inspecting proxy or package mirror included)."""
    if not SYSTEM_CA_BUNDLE.is_file():
        return {}
    bundle = str(SYSTEM_CA_BUNDLE)
    return {"PIP_CERT": bundle, "SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle}


def _setup_script(environment: Environment, *, network: bool) -> tuple[str, list[str], list[Mount]]:
    """The script to run, the spec's steps that cannot run here, and the interpreter's mounts."""
    if not environment.spec:
        return environment.setup_command, [], []
    spec = EnvironmentSpec.model_validate(environment.spec)
    python, mounts = "/usr/bin/python3", []
    if spec.python:
        interpreter = find_interpreter(
            spec.python,
            configured=parse_interpreter_setting(settings.PYTHON_INTERPRETERS),
            pyenv_root=Path(settings.PYENV_ROOT),
        )
        python, mounts = str(interpreter.executable), interpreter_mounts(interpreter)
    plan = plan_setup(spec, environment.setup_command, python=python, uv=UV_PATH, seed=network)
    return plan.script, plan.unsupported, mounts


def _setup_egress(environment: Environment) -> Egress:
    """The package registries of the projects that allow this build the network, nothing else."""
    rows = Task.objects.filter(
        repository_id=environment.repository_id,
        base_commit=environment.commit,
        project__allow_setup_network=True,
    ).values_list("setup_command", "environment_spec", "project__package_registries")
    names: list[str] = []
    for command, spec, registries in rows:
        if setup_hash(command, spec) == environment.setup_hash:
            names += [n for n in (registries or DEFAULT_REGISTRIES) if n not in names]
    return Egress(
        allow=registry_allow_list(names or list(DEFAULT_REGISTRIES)),
        internal_hosts=tuple(settings.EGRESS_INTERNAL_HOSTS),
    )


def _network_summary(result: ExecResult) -> str:
    """The build's connections through the egress proxy, one line each, for the setup log."""
    lines = [
        f"[network] {'allowed' if c.allowed else 'REFUSED'} {c.kind} {c.host}:{c.port}"
        + (f" ({c.bytes_up} B sent, {c.bytes_down} B received)" if c.allowed else f": {c.reason}")
        for c in result.network_log
    ]
    if result.network_log_dropped:
        lines.append(f"[network] and {result.network_log_dropped} more connections")
    return "".join(f"\n{line}" for line in lines)


def _network_allowed(environment: Environment) -> bool:
    # Tasks of several projects can share one environment: the build may use the network when
    # one of them belongs to a project that allows it (checks never get the network).
    commands = Task.objects.filter(
        repository_id=environment.repository_id,
        base_commit=environment.commit,
        project__allow_setup_network=True,
    ).values_list("setup_command", "environment_spec")
    return any(setup_hash(command, spec) == environment.setup_hash for command, spec in commands)


def _setup_log(result: ExecResult) -> str:
    text = result.stdout + ("\n" if result.stdout and result.stderr else "") + result.stderr
    if result.timed_out:
        text += f"\n[setup stopped: it ran longer than {SETUP_TIMEOUT_SECONDS} s]"
    elif result.killed_reason:
        text += f"\n[setup killed: {result.killed_reason}]"
    elif result.returncode != 0:
        text += f"\n[setup exited {result.returncode}]"
    if result.truncated:
        text += "\n[output truncated by the sandbox]"
    return cap_log(text)


def cap_log(text: str, limit: int = LOG_LIMIT_BYTES) -> str:
    """Keep the head and the tail of a long log, where the errors usually are."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    half = limit // 2
    head = data[:half].decode("utf-8", errors="ignore")
    tail = data[-half:].decode("utf-8", errors="ignore")
    return f"{head}\n[... {len(data) - limit} bytes cut ...]\n{tail}"


def _finish(
    environment_id: int,
    status: str,
    log: str,
    target: Path,
    started: float,
    unsupported: list[str] | None = None,
) -> None:
    if status != EnvironmentStatus.READY:
        shutil.rmtree(target, ignore_errors=True)
    duration = time.monotonic() - started
    with transaction.atomic():
        Environment.objects.filter(pk=environment_id).update(
            status=status,
            log=log,
            unsupported=unsupported or [],
            path=str(target) if status == EnvironmentStatus.READY else "",
            duration_seconds=duration,
            finished_at=timezone.now(),
            lease_expires_at=None,
        )
        # One event per build; its log stays on the row.
        record(
            None,
            "environment.build",
            object_type="tasks.environment",
            object_id=environment_id,
            old={"status": EnvironmentStatus.BUILDING},
            new={"status": status, "duration_seconds": round(duration, 3)},
        )
    logger.info("environment %s: %s", environment_id, status)


def request_rebuild(environment: Environment) -> bool:
    """Make a failed environment buildable again; return whether it changed."""
    return (
        Environment.objects.filter(pk=environment.pk, status=EnvironmentStatus.FAILED).update(
            status=EnvironmentStatus.PENDING, lease_expires_at=None
        )
        == 1
    )


def recover_environments() -> list[int]:
    """Queue again the builds whose worker died (their lease expired); return their ids."""
    now = timezone.now()
    recovered = []
    stale = Environment.objects.filter(status=EnvironmentStatus.BUILDING, lease_expires_at__lt=now)
    for environment_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            reset = Environment.objects.filter(
                pk=environment_id, status=EnvironmentStatus.BUILDING, lease_expires_at__lt=now
            ).update(status=EnvironmentStatus.PENDING, lease_expires_at=None)
            if reset == 1:
                record(
                    None,
                    "environment.requeued",
                    object_type="tasks.environment",
                    object_id=environment_id,
                    old={"status": EnvironmentStatus.BUILDING},
                    new={"status": EnvironmentStatus.PENDING},
                    reason="the worker building it stopped renewing its lease",
                )
        if reset == 1:
            build_environment.enqueue(environment_id)
            recovered.append(environment_id)
    return recovered
