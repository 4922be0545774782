"""JSON log lines (MARLIN_LOG_FORMAT=json) and the request or job id every line carries.

The formatter writes one JSON object per record: time, level, logger, message, the id of the
request or job being served (from a context variable, so lines logged deep inside a view carry
it too), the fields a record was given with `extra=` among FIELDS, and the traceback if any.
Only those fields: a record never dumps headers, cookies, query strings or job arguments, so
tokens and provider keys cannot reach the log through it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from datetime import UTC, datetime

# The id of the request or job this thread (or asyncio task) is serving, for every log line.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# What a record may add with `extra=`: the request and job lines' fields.
FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "user_id",
    "job",
    "outcome",
)

# An incoming X-Request-ID is kept only if it looks like an id: a proxy's UUID or hex, not text
# that could forge log lines or carry a token someone pasted.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,127}")


def accepted_request_id(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is a plausible id, else a new one."""
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)  # what a UUID4's hex would be, without building the UUID


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current_request, current_job = request_id.get(), job_id.get()
        if current_request:
            line["request_id"] = current_request
        if current_job:
            line["job_id"] = current_job
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
