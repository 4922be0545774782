"""Workers' heartbeats: the one table of the monitoring app."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """One running `marlin worker`, seen at `last_seen_at` (database time of its latest beat).

    /readyz and /metrics read the freshest row: a job backend with no live worker queues work
    that never runs. A worker stamps its row every MARLIN_WORKER_HEARTBEAT_SECONDS from a thread
    of its own and removes it when it stops in order; rows of workers that were killed stay until
    they are a day old.
    """

    worker_id = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"worker {self.worker_id} on {self.hostname} (pid {self.pid})"
