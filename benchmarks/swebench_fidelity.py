"""Does Marlin grade SWE-bench instances as the official harness does? And BugsInPy-style tasks
as recorded? Runs real instances through the real worker path and prints the agreement.

SWE-bench part: the instances of the Docker-free repositories (flask, pytest by default) are
imported with `marlin import swebench-tasks` (swebench checks, environment specs), each
prediction file with `marlin import predictions` (plus the gold patch of every instance), and
`marlin worker --batch` builds the environments and runs the checks in the bubblewrap sandbox.
A candidate is "resolved" when its swebench check passed. With official resolved lists given
(`--resolved NAME=FILE`, SWE-bench's results.json or a JSON list of instance ids, NAME the
prediction file's stem), every verdict is compared; the gold patch is expected resolved always.

BugsInPy part (`--bugsinpy FILE`): each task that reproduces is imported with a hidden-tests
check and an environment in Marlin's own spec format (the record's verified Python and
packages), and graded for three candidates: the fix (expected pass), no change and the tests
alone (expected fail).

Each disagreement is printed with its cause: environment (the environment did not build, or the
check could not run), parsing (the log held no test results the harness could read), timeout,
or verdict (the tests ran and disagree). Time per instance: environment build + checks.

Mirrors are local bare repositories given on the command line (nothing is downloaded except
packages from the registry during environment builds):

    .venv/bin/python benchmarks/swebench_fidelity.py \\
        --instances ../shared/realdata/swebench_lite/tasks/swe-bench-lite.test.json \\
        --predictions ../shared/realdata/swebench_lite/predictions/*.json* \\
        --mirror pallets/flask=/work/.mirror/pallets+flask/repo \\
        --mirror pytest-dev/pytest=/work/.mirror/pytest-dev+pytest/repo \\
        [--resolved autocoderover-run2=results.json ...] [--repos pallets/flask,...] \\
        [--bugsinpy ../shared/realdata/task_repos/bugsinpy_derived_tasks.jsonl \\
         --mirror cool-RR/PySnooper=... --mirror nvbn/thefuck=... --mirror tqdm/tqdm=...]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCKER_FREE = ("pallets/flask", "pytest-dev/pytest")
GOLD = "gold"
# A change that touches no code (an empty patch is not a candidate): the bug stays.
NO_OP = (
    "diff --git a/NOOP.md b/NOOP.md\nnew file mode 100644\n--- /dev/null\n+++ b/NOOP.md\n"
    "@@ -0,0 +1 @@\n+No change.\n"
)


def _configure(base: Path) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": f"sqlite:///{base / 'marlin.sqlite3'}",
        "MARLIN_DATA_DIR": str(base / "data"),
        "MARLIN_TASKS_BACKEND": "database",
        "MARLIN_LOG_LEVEL": "WARNING",
        "MARLIN_ALLOW_LOCAL_REPOSITORIES": "1",
        # Where the package registry's names resolve to addresses the egress proxy refuses by
        # default (a registry mirror on a private or reserved network), name them here.
        "MARLIN_EGRESS_INTERNAL_HOSTS": os.environ.get(
            "MARLIN_EGRESS_INTERNAL_HOSTS", "pypi.org,files.pythonhosted.org"
        ),
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    return {**os.environ, **env}


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _resolved_list(path: Path) -> set[str]:
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = data.get("resolved", data.get("resolved_ids", []))
    return {str(i) for i in data}


def _mirror_copy(source: str, base: Path, name: str) -> Path:
    """A copy of the given mirror (Marlin adds worktrees to its mirrors, and the sandbox sees
    no alternates outside it; the given one is left untouched)."""
    target = base / "mirrors" / (name.replace("/", "+") + ".git")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "-q", "--mirror", source, str(target)],
            check=True,
            capture_output=True,
        )
    return target


def _register(name: str, mirror: Path) -> Any:
    from marlin.catalog.models import MirrorStatus, Repository

    repository, _ = Repository.objects.get_or_create(
        normalized_url=f"local:{mirror}",
        defaults={
            "url": str(mirror),
            "name": name,
            "is_local": True,
            "mirror_status": MirrorStatus.READY,
            "mirror_path": str(mirror),
        },
    )
    return repository


def _actor() -> Any:
    from django.core.management import call_command

    from marlin.accounts.models import User

    user = User.objects.filter(username="bench").first()
    if user is None:
        call_command(
            "createuser",
            "bench",
            "--role",
            "admin",
            "--role",
            "author",
            "--role",
            "reviewer",
            "--password",
            "bench-password-1",
            verbosity=0,
        )
        user = User.objects.get(username="bench")
    return user


def _project(actor: Any, name: str) -> Any:
    from marlin.tasks import actions as task_actions
    from marlin.tasks.models import Project

    project = Project.objects.filter(name=name).first() or task_actions.do_create_project(
        actor, name
    )
    if hasattr(project, "allow_setup_network"):
        project.allow_setup_network = True
        project.save()
    return project


def _run_workers(env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "marlin", "worker", "--batch", "--interval", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return time.monotonic() - started


def _cause(result: Any, environment: Any) -> str:
    if environment is not None and environment.status != "ready":
        return "environment"
    if result is None:
        return "environment"
    if result.status == "timed_out":
        return "timeout"
    if result.status == "error":
        return "environment"
    if "found no test results" in result.detail:
        return "parsing"
    return "verdict"


def _swebench(args: argparse.Namespace, env: dict[str, str], base: Path) -> dict[str, Any]:
    from marlin.agents.imports import do_import_predictions
    from marlin.agents.models import Candidate
    from marlin.checks.models import CheckResult
    from marlin.tasks.imports import do_import_swebench_tasks
    from marlin.tasks.jobs import environment_for
    from marlin.tasks.models import Task

    repos = tuple(args.repos.split(",")) if args.repos else DOCKER_FREE
    instances = [r for r in _records(Path(args.instances)) if r["repo"] in repos]
    if args.only:
        wanted = set(args.only.split(","))
        instances = [r for r in instances if r["instance_id"] in wanted]
    instances = instances[: args.limit] if args.limit else instances
    ids = {r["instance_id"] for r in instances}
    actor = _actor()
    project = _project(actor, "SWE-bench fidelity")
    for repo in sorted({r["repo"] for r in instances}):
        if repo not in args.mirrors:
            sys.exit(f"no --mirror for {repo}")
        _register(repo, _mirror_copy(args.mirrors[repo], base, repo))
    report = do_import_swebench_tasks(actor, project, json.dumps(instances), approve=True)
    print(f"tasks: {report.created} created, {len(report.errors)} bad", flush=True)
    for error in report.errors:
        print(f"  line {error.line_no}: {error.reason}")
    runs: dict[str, list[dict[str, Any]]] = {}
    gold = [
        {"instance_id": r["instance_id"], "model_name_or_path": GOLD, "model_patch": r["patch"]}
        for r in instances
    ]
    runs[GOLD] = gold
    for path in args.predictions:
        name = Path(path).name.split(".")[0]
        runs[name] = [
            p | {"model_name_or_path": name}
            for p in _records(Path(path))
            if p["instance_id"] in ids
        ]
    for name, predictions in runs.items():
        imported = do_import_predictions(actor, project, json.dumps(predictions))
        print(
            f"predictions {name}: {imported.created} candidates, {len(imported.errors)} not "
            f"imported ({'; '.join(sorted({e.reason[:80] for e in imported.errors}))})",
            flush=True,
        )
    elapsed = _run_workers(env, base / "worker.log")
    official = {name: _resolved_list(Path(path)) for name, path in args.resolved.items()}
    rows = []
    per_instance: dict[str, float] = defaultdict(float)
    for task in Task.objects.filter(project=project):
        environment = environment_for(task)
        per_instance[task.external_id] += environment.duration_seconds or 0.0
        for candidate in Candidate.objects.filter(turn__run__task=task).select_related(
            "turn__run__agent"
        ):
            agent = candidate.turn.run.agent.name
            result = CheckResult.objects.filter(candidate=candidate).first()
            per_instance[task.external_id] += (result.duration_seconds or 0.0) if result else 0.0
            resolved = result is not None and result.status == "passed"
            expected: bool | None = None
            if agent == GOLD:
                expected = True
            elif agent in official:
                expected = task.external_id in official[agent]
            rows.append(
                {
                    "instance": task.external_id,
                    "run": agent,
                    "resolved": resolved,
                    "expected": expected,
                    "cause": "" if expected in (None, resolved) else _cause(result, environment),
                    "detail": (result.detail if result else "no check result")[:300],
                    "environment": environment.status,
                }
            )
    # Predictions that did not become candidates (empty patches): the harness does not
    # resolve them either.
    for name, predictions in runs.items():
        if name == GOLD or name not in official:
            continue
        have = {r["instance"] for r in rows if r["run"] == name}
        for prediction in predictions:
            if prediction["instance_id"] not in have:
                expected = prediction["instance_id"] in official[name]
                rows.append(
                    {
                        "instance": prediction["instance_id"],
                        "run": name,
                        "resolved": False,
                        "expected": expected,
                        "cause": "verdict" if expected else "",
                        "detail": "not imported (empty or unusable patch)",
                        "environment": "",
                    }
                )
    return {"rows": rows, "elapsed": elapsed, "per_instance": dict(per_instance)}


def _bugsinpy(args: argparse.Namespace, env: dict[str, str], base: Path) -> dict[str, Any]:
    from marlin.agents.imports import do_import_predictions
    from marlin.agents.models import Candidate
    from marlin.checks.models import CheckResult
    from marlin.tasks.imports import do_import_swebench_tasks
    from marlin.tasks.jobs import environment_for
    from marlin.tasks.models import Task

    records = []
    for record in _records(Path(args.bugsinpy)):
        verified = record.get("verified_here") or {}
        if isinstance(verified, str):
            verified = ast.literal_eval(verified)
        if not verified.get("reproduces"):
            continue
        version = ".".join(str(verified.get("python", "3.8")).split(".")[:2])
        record = dict(record)
        record["environment"] = {
            "python": version,
            "pip_packages": _split_packages(str(verified.get("pip_install", ""))),
        }
        records.append(record)
    actor = _actor()
    project = _project(actor, "BugsInPy fidelity")
    for repo in sorted({r["repo"] for r in records}):
        if repo not in args.mirrors:
            sys.exit(f"no --mirror for {repo}")
        _register(repo, _mirror_copy(args.mirrors[repo], base, repo))
    report = do_import_swebench_tasks(actor, project, json.dumps(records), approve=True)
    print(f"BugsInPy tasks: {report.created} created, {len(report.errors)} bad", flush=True)
    for error in report.errors:
        print(f"  line {error.line_no}: {error.reason}")
    patches = {
        "fix": lambda r: r["patch"],
        "no-op": lambda r: NO_OP,
        "tests-only": lambda r: r["test_patch"],
    }
    for name, patch in patches.items():
        predictions = [
            {"instance_id": r["instance_id"], "model_name_or_path": name, "model_patch": patch(r)}
            for r in records
        ]
        imported = do_import_predictions(actor, project, json.dumps(predictions))
        print(
            f"BugsInPy {name}: {imported.created} candidates, {len(imported.errors)} not imported",
            flush=True,
        )
    elapsed = _run_workers(env, base / "worker-bugsinpy.log")
    rows = []
    per_instance: dict[str, float] = defaultdict(float)
    for task in Task.objects.filter(project=project):
        environment = environment_for(task)
        per_instance[task.external_id] += environment.duration_seconds or 0.0
        results = {
            c.turn.run.agent.name: CheckResult.objects.filter(candidate=c).first()
            for c in Candidate.objects.filter(turn__run__task=task).select_related(
                "turn__run__agent"
            )
        }
        for name in patches:
            result = results.get(name)
            per_instance[task.external_id] += (result.duration_seconds or 0.0) if result else 0.0
            passed = result is not None and result.status == "passed"
            expected = name == "fix"
            if name not in results:
                # An empty patch is not imported as a candidate: no change stays unfixed.
                passed, detail = False, "no candidate (empty patch)"
            else:
                detail = (result.detail if result else "no check result")[:300]
            rows.append(
                {
                    "instance": task.external_id,
                    "run": name,
                    "resolved": passed,
                    "expected": expected,
                    "cause": "" if passed == expected else _cause(result, environment),
                    "detail": detail,
                    "environment": environment.status,
                }
            )
    return {"rows": rows, "elapsed": elapsed, "per_instance": dict(per_instance)}


def _split_packages(text: str) -> list[str]:
    import shlex

    return shlex.split(text)


def _print(title: str, outcome: dict[str, Any]) -> None:
    rows = outcome["rows"]
    judged = [r for r in rows if r["expected"] is not None]
    agree = sum(r["resolved"] == r["expected"] for r in judged)
    print(f"\n== {title}")
    by_run: dict[str, Counter[str]] = defaultdict(Counter)
    for r in judged:
        by_run[r["run"]]["agree" if r["resolved"] == r["expected"] else "disagree"] += 1
    for run, counts in sorted(by_run.items()):
        print(f"  {run}: {counts['agree']} of {counts['agree'] + counts['disagree']} agree")
    share = agree / len(judged) if judged else 0.0
    print(f"  agreement: {agree} of {len(judged)} ({share:.1%})")
    unjudged = [r for r in rows if r["expected"] is None]
    if unjudged:
        resolved = sum(r["resolved"] for r in unjudged)
        print(f"  without an official list: {len(unjudged)} verdicts, {resolved} resolved")
    causes = Counter(r["cause"] for r in judged if r["resolved"] != r["expected"])
    if causes:
        print("  disagreements by cause: " + ", ".join(f"{c} {n}" for c, n in causes.items()))
    for r in sorted(judged, key=lambda r: (r["instance"], r["run"])):
        if r["resolved"] != r["expected"]:
            print(
                f"  DISAGREE {r['instance']} [{r['run']}]: Marlin "
                f"{'resolved' if r['resolved'] else 'not resolved'}, expected "
                f"{'resolved' if r['expected'] else 'not resolved'}; cause {r['cause']}; "
                f"environment {r['environment']}; {r['detail']}"
            )
    times = sorted(outcome["per_instance"].values())
    if times:
        median = times[len(times) // 2]
        print(
            f"  time per instance (environment build + checks): median {median:.1f} s, "
            f"max {times[-1]:.1f} s; worker wall time {outcome['elapsed']:.0f} s"
        )
    for instance, seconds in sorted(outcome["per_instance"].items()):
        print(f"    {instance}: {seconds:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", help="SWE-bench task records (JSON list or JSON lines)")
    parser.add_argument("--predictions", nargs="*", default=[], help="prediction files")
    parser.add_argument(
        "--resolved", action="append", default=[], metavar="NAME=FILE", help="official lists"
    )
    parser.add_argument(
        "--mirror", action="append", default=[], metavar="OWNER/NAME=PATH", help="local mirrors"
    )
    parser.add_argument("--repos", default="", help=f"default: {','.join(DOCKER_FREE)}")
    parser.add_argument("--only", default="", help="instance ids, comma-separated")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--bugsinpy", help="BugsInPy-derived task records (JSON lines)")
    parser.add_argument("--workdir", help="keep the database and data here (default: a temp dir)")
    args = parser.parse_args()
    args.mirrors = dict(m.split("=", 1) for m in args.mirror)
    args.resolved = dict(r.split("=", 1) for r in args.resolved)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="marlin-fidelity-"))
    base.mkdir(parents=True, exist_ok=True)
    env = _configure(base)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"# data in {base}")
    if args.instances:
        _print("SWE-bench (Docker-free subset)", _swebench(args, env, base))
    if args.bugsinpy:
        _print("BugsInPy-derived tasks that reproduce", _bugsinpy(args, env, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
