"""Run Marlin on one machine: migrate if needed, keep a job worker running as a child process,
serve the web app with gunicorn (processes x threads, a child process too; pooled database
connections on PostgreSQL). `marlin demo` serves through here as well.

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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger("marlin.serve")

# Waits before starting a worker that exited again: 1 s doubling to 60 s; a worker that ran
# longer than that had a good run, and the next wait is short again.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
# How long a stopping worker may take to finish the job in hand before it is killed; a killed
# job's rows are picked up again once their lease runs out.
STOP_GRACE_SECONDS = 10.0
# Threads per web server process (measured: docs/decisions/0010-production-web-server.md).
DEFAULT_THREADS = 8


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


def metrics_directory() -> tuple[str, bool]:
    """The PROMETHEUS_MULTIPROC_DIR that the web processes and the worker share (so /metrics sums
    them), and whether serve made it (then it is removed when serve stops: its counts belong to
    this run). One the operator set is used as it is."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return given, False
    return tempfile.mkdtemp(prefix="marlin-metrics-"), True


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM and SIGHUP end serve the way Ctrl-C does: by unwinding, so its children are stopped.
    raise SystemExit(0)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def bind_address(addrport: str, port: int | None) -> str:
    """ADDR:PORT, PORT or ADDR (IPv6 in brackets) and an optional --port, as gunicorn's --bind.
    Raise CommandError with the accepted forms when it is none of them."""
    host, sep, tail = addrport.rpartition(":")
    if not sep or (addrport.startswith("[") and not host.endswith("]")):
        host, tail = ("", addrport) if addrport.isdigit() else (addrport, "")
    if port is not None:
        tail = str(port)
    host = host or "127.0.0.1"
    if not tail.isdigit() or not 0 < int(tail) < 65536:
        raise CommandError(
            f"{addrport!r}: give a port (8000), an address and a port (127.0.0.1:8000, "
            "[::1]:8000) or --port 8000."
        )
    return f"{host}:{int(tail)}"


def web_server_command(bind: str, *, workers: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:marlin.management.gunicorn_conf",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]


def _stop_web(web: subprocess.Popen[bytes]) -> None:
    """SIGTERM: gunicorn lets the requests in flight finish (graceful_timeout), then kill what is
    left of its process group."""
    if not _exited(web):
        web.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 5
        while not _exited(web) and time.monotonic() < deadline:
            time.sleep(0.1)
    _kill_group(web)
    web.wait()


class Command(BaseCommand):
    help = (
        "Migrate if needed, keep a job worker running and serve the web app with gunicorn "
        "(default 127.0.0.1:8000)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            default=os.environ.get("MARLIN_LISTEN", "127.0.0.1:8000"),
            help="ADDR:PORT or PORT to listen on (default 127.0.0.1:8000, or MARLIN_LISTEN).",
        )
        parser.add_argument("--port", type=int, default=None, help="Port (wins over ADDR:PORT).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a job worker.")
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("MARLIN_WEB_WORKERS") or 0) or usable_cpus(),
            help="Web server processes (default: one per usable CPU, or MARLIN_WEB_WORKERS).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("MARLIN_WEB_THREADS") or DEFAULT_THREADS),
            help=f"Threads per process (default {DEFAULT_THREADS}, or MARLIN_WEB_THREADS).",
        )

    def handle(self, *args, **options) -> None:
        bind = bind_address(options["addrport"], options["port"])
        workers, threads = options["workers"], options["threads"]
        if workers < 1 or threads < 1:
            raise CommandError("--workers and --threads must be at least 1.")
        migrate_if_needed(self.stdout)
        # serve itself needs the database no more: its connection (and on PostgreSQL its pool)
        # would stay open beside the web server's for as long as it runs.
        for database in connections.all(initialized_only=True):
            database.close()
            close_pool = getattr(database, "close_pool", None)  # PostgreSQL's pool
            if close_pool is not None:
                close_pool()
        # Set before the children start: prometheus-client picks its storage when imported.
        metrics_dir, made_metrics_dir = metrics_directory()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        supervisor = None if options["no_worker"] else WorkerSupervisor()
        signal.signal(signal.SIGTERM, _stop_on_signal)
        signal.signal(signal.SIGHUP, _stop_on_signal)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "marlin.settings"),
            "MARLIN_SERVE_PID": str(os.getpid()),
            # One pooled connection per thread: every thread can work, and the process holds at
            # most that many connections however many clients are connected.
            "MARLIN_DB_POOL_SIZE": os.environ.get("MARLIN_DB_POOL_SIZE") or str(threads),
        }
        web: subprocess.Popen[bytes] | None = None
        try:
            if supervisor is not None:
                supervisor.start()
            # Its own process group, like the worker: Ctrl-C reaches serve, which stops it.
            web = subprocess.Popen(
                web_server_command(bind, workers=workers, threads=threads),
                env=env,
                process_group=0,
            )
            self.stdout.write(
                f"Marlin is serving on http://{bind}/ "
                f"(gunicorn: {workers} process(es) x {threads} threads)"
            )
            self.stdout.flush()
            returncode = web.wait()
            if returncode:
                raise CommandError(
                    f"The web server stopped with exit status {returncode} (see its log above; "
                    "is the port already in use?)."
                )
        except KeyboardInterrupt:
            pass
        finally:
            if web is not None:
                _stop_web(web)
            if supervisor is not None:
                supervisor.stop()
            if made_metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
