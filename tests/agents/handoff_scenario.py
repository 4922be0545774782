"""Rows for the hand-off tests, which drive real worker processes against a database file: a task
on the demo repository with one quick check, and two command-line agents run as partners.

    python -m tests.agents.handoff_scenario pair      two partnered runs, turn 1 queued for both
    python -m tests.agents.handoff_scenario stranded  two partnered runs whose turns are done with
                                                      a candidate each, and no check rows and no
                                                      comparison: what a worker that died between
                                                      saving a candidate and handing it on left
                                                      behind before the hand-off was one commit
    python -m tests.agents.handoff_scenario state     the runs, candidates, checks, comparisons
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

QUICK_CHECK = [{"kind": "command", "name": "quick", "command": "true"}]
# The agent writes its prompt into a new file: a one-line patch, in a second or so.
AGENT_SETTINGS = {"argv": ["sh", "-c", "cat > NOTES.md"], "timeout": 60}


def _runs(*, done: bool) -> dict[str, Any]:
    from django.db import transaction
    from django.utils import timezone

    from marlin import paths
    from marlin.agents.actions import create_run, link_partners
    from marlin.agents.jobs import candidate_fields
    from marlin.agents.models import Agent, Candidate, Provider, RunStatus, TurnStatus
    from tests.checks.scenario import demo_task, link_shared_tools

    link_shared_tools(paths.data_dir())
    with transaction.atomic():
        task = demo_task(checks=QUICK_CHECK)
        agents = [
            Agent.objects.create(
                name=name, version_label="1", provider=Provider.COMMAND, settings=AGENT_SETTINGS
            )
            for name in ("scribe-a", "scribe-b")
        ]
        first, second = (create_run(None, task, agent) for agent in agents)  # type: ignore[arg-type]
        link_partners(first, second)
        if done:
            for run in (first, second):
                now = timezone.now()
                turn = run.turns.get()
                turn.status, turn.started_at, turn.finished_at = TurnStatus.DONE, now, now
                turn.exit_status = "submitted"
                turn.save()
                run.status = RunStatus.WAITING
                run.save(update_fields=["status"])
                Candidate.objects.create(turn=turn, **candidate_fields(_patch(run.agent.name)))
    return {"task": task.pk, "runs": [first.pk, second.pk]}


def _patch(name: str) -> str:
    return (
        "diff --git a/NOTES.md b/NOTES.md\nnew file mode 100644\n--- /dev/null\n"
        f"+++ b/NOTES.md\n@@ -0,0 +1 @@\n+{name} was here\n"
    )


def state(task_id: int) -> dict[str, Any]:
    from marlin.agents.models import Run
    from marlin.checks.models import CheckResult
    from marlin.review.models import Comparison

    runs = {}
    for run in Run.objects.filter(task_id=task_id).order_by("pk"):
        turn = run.turns.get(number=1)
        candidate = getattr(turn, "candidate", None)
        runs[str(run.pk)] = {
            "turn": turn.status,
            "candidate": candidate.pk if candidate else None,
            "checks": sorted(
                CheckResult.objects.filter(candidate=candidate).values_list("status", flat=True)
            )
            if candidate
            else [],
        }
    comparisons = list(Comparison.objects.filter(task_id=task_id).values("run_a", "run_b"))
    return {"runs": runs, "comparisons": comparisons}


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings")
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog="handoff_scenario")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("pair")
    sub.add_parser("stranded")
    show = sub.add_parser("state")
    show.add_argument("task", type=int)
    args = parser.parse_args(argv)
    if args.action == "state":
        print(json.dumps(state(args.task)))
    else:
        print(json.dumps(_runs(done=args.action == "stranded")))


if __name__ == "__main__":
    main(sys.argv[1:])
