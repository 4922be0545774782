"""Child processes that die with the process that started them (Linux prctl PR_SET_PDEATHSIG).

Plain Python: the gunicorn master started by `marlin serve` calls it before Django is set up.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

logger = logging.getLogger("marlin.serve")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Have Linux send `sig` to this process when the thread that started it ends, so a
    `marlin serve` killed with SIGKILL leaves nothing running under PID 1. If the parent is
    already gone, stop now. Elsewhere than Linux only the parent's own shutdown stops us."""
    if not sys.platform.startswith("linux"):
        logger.warning("cannot follow the parent process on %s", sys.platform)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # it died before the prctl took effect
        raise SystemExit(f"The parent process {parent_pid} is gone; stopping.")
