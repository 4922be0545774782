"""Run Marlin on one machine: migrate if needed, keep a job worker running as a child process,
serve the web app.

The worker is supervised: started again (after a wait that doubles, up to a minute) whenever it
exits; stopped, with whatever is left in its process group, when serve stops on SIGTERM, SIGINT
or SIGHUP. A serve killed with SIGKILL cannot stop anything, so the worker asks Linux to kill it
when serve's supervising thread ends (`marlin worker --parent-pid`, prctl PR_SET_PDEATHSIG), and
its sandboxes die with it (bwrap --die-with-parent). A check cut short by any of these runs again
once its lease runs out (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger("marlin.serve")

# Waits before starting a worker that exited again: 1 s doubling to 60 s; a worker that ran
# longer than that had a good run, and the next wait is short again.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
# How long a stopping worker may take to finish the job in hand before it is killed; a killed
# job's rows are picked up again once their lease runs out.
STOP_GRACE_SECONDS = 10.0


def migrate_if_needed(stdout) -> None:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        stdout.write(f"Applying {len(plan)} migration(s)…")
        call_command("migrate", interactive=False, verbosity=0)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it: while it is unreaped its pid (and so
    its process group id) cannot be reused, so signalling the group cannot hit a stranger."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class WorkerSupervisor:
    """One `marlin worker` child kept running by a thread of its own.

    That thread starts every worker and stops the last one: Linux delivers a worker's death
    signal (PR_SET_PDEATHSIG) when the *thread* that started it ends, so it must be the thread
    that lives as long as the worker is wanted.
    """

    def __init__(self, *, stop_grace: float = STOP_GRACE_SECONDS) -> None:
        self.stop_grace = stop_grace
        self._stopping = threading.Event()
        # A daemon thread: should serve end without stop() (os._exit), the worker dies with it.
        self._thread = threading.Thread(
            target=self._supervise, name="marlin-worker-supervisor", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL to its process group after the grace time)."""
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=self.stop_grace + 10)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # A child process rather than a thread: a crashing job cannot take the web app down, and
        # the worker is the same `marlin worker` that scales out to other machines. Its own
        # process group: a terminal's Ctrl-C reaches serve only, which then stops the worker in
        # order, and whatever the worker leaves in its group can be killed with it.
        return subprocess.Popen(
            [sys.executable, "-m", "marlin", "worker", "--parent-pid", str(os.getpid())],
            env=os.environ.copy(),
            process_group=0,
        )

    def _supervise(self) -> None:
        delay = RESTART_FIRST_SECONDS
        while not self._stopping.is_set():
            started = time.monotonic()
            worker = self._spawn()
            logger.info("job worker started (pid %s)", worker.pid)
            while not self._stopping.wait(0.5):
                if _exited(worker):
                    break
            if self._stopping.is_set():
                self._stop(worker)
                return
            _kill_group(worker)  # anything it left in its group, before its pid is released
            returncode = worker.wait()
            if time.monotonic() - started > RESTART_MAX_SECONDS:
                delay = RESTART_FIRST_SECONDS
            logger.warning(
                "job worker (pid %s) exited with %s; restarting it in %.0f s",
                worker.pid,
                returncode,
                delay,
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    def _stop(self, worker: subprocess.Popen[bytes]) -> None:
        if not _exited(worker):
            worker.send_signal(signal.SIGTERM)  # the job in hand may finish within the grace
            deadline = time.monotonic() + self.stop_grace
            while not _exited(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
        _kill_group(worker)
        worker.wait()


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM and SIGHUP end serve the way Ctrl-C does: by unwinding, so the worker is stopped.
    raise SystemExit(0)


class Command(BaseCommand):
    help = (
        "Migrate if needed, keep a job worker running and serve the web app "
        "(default 127.0.0.1:8000)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default=os.environ.get("MARLIN_LISTEN", "127.0.0.1:8000")
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start a job worker.")

    def handle(self, *args, **options) -> None:
        migrate_if_needed(self.stdout)
        supervisor = None if options["no_worker"] else WorkerSupervisor()
        signal.signal(signal.SIGTERM, _stop_on_signal)
        signal.signal(signal.SIGHUP, _stop_on_signal)
        try:
            if supervisor is not None:
                supervisor.start()
            self.stdout.write(f"Marlin is serving on http://{options['addrport']}/")
            # Static files come from WhiteNoise, so the plain threaded server is enough on one
            # machine; behind a proxy use gunicorn marlin.wsgi (docs/scaling.md).
            call_command(
                "runserver",
                options["addrport"],
                use_reloader=False,
                use_threading=True,
                skip_checks=True,
            )
        finally:
            if supervisor is not None:
                supervisor.stop()
