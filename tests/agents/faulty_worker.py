"""Marlin's command line with one fault added, for tests only:

    MARLIN_TEST_KILL_IN_HANDOFF_OF_RUN=<run id> python -m tests.agents.faulty_worker worker ...

The process SIGKILLs itself in the middle of handing on that run's candidate: the candidate row
is written, its checks and its comparison are not yet. That is the moment a worker can die
between saving a candidate and handing it on. The receiver is connected before Django sets up,
so it runs before the checks and review apps' receivers (connected in their AppConfig.ready()).
Nothing of this is in Marlin itself: the worker is the real `marlin` command.
"""

from __future__ import annotations

import os
import signal
import sys

from marlin.agents.signals import candidate_ready
from marlin.cli import main


def _die_in_hand_off(sender: object, *, candidate: object, **kwargs: object) -> None:
    run_id = candidate.turn.run_id  # type: ignore[attr-defined]
    if str(run_id) == os.environ.get("MARLIN_TEST_KILL_IN_HANDOFF_OF_RUN"):
        os.kill(os.getpid(), signal.SIGKILL)


candidate_ready.connect(_die_in_hand_off, weak=False, dispatch_uid="tests.die_in_hand_off")

if __name__ == "__main__":
    main(sys.argv[1:])
