"""The gunicorn settings `marlin serve` runs the web app with (`-c python:<this module>`).

`marlin serve` passes the bind address, the number of worker processes and threads on the
command line (they win over these). Why gunicorn with threads:
docs/decisions/0010-production-web-server.md.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from marlin.management.lifetime import die_with_parent

wsgi_app = "marlin.wsgi:application"
# Threads in each process: a request waiting on the database does not hold a core, and idle
# keep-alive connections wait in the worker's poller, not in a thread.
worker_class = "gthread"
# A request slower than this is a bug (exports, checks and agent runs are jobs); the worker
# that holds it is restarted.
timeout = 60
graceful_timeout = 10  # requests in flight may finish this long after SIGTERM
# Seconds an idle keep-alive connection stays open. Annotators' clients pause between requests
# (pages send a heartbeat every 15 s); closing after gunicorn's default 2 s makes them reconnect,
# and a request sent just as the server closes the connection fails with a reset (seen in
# benchmarks/load_annotators.py). An idle connection costs a file descriptor in the poller.
keepalive = 30
# Gunicorn's own log (starts, stops, worker restarts) on stderr, like the worker's.
errorlog = "-"
loglevel = "info"
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) is one per user, and two
# servers on one machine (tests, a benchmark beside a demo) would take it from each other.
control_socket_disable = True
# Django is imported once, in the master, and the workers fork from it: a second worker costs
# no second start-up (seconds on a loaded machine). Nothing connects to the database at import.
preload_app = True


def on_starting(server: Any) -> None:
    """Stop (gracefully: SIGTERM, so the workers finish their requests) when `marlin serve` dies,
    even by SIGKILL; the workers follow their master."""
    parent = os.environ.get("MARLIN_SERVE_PID")
    if parent:
        die_with_parent(int(parent), signal.SIGTERM)
