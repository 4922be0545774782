"""Django's PostgreSQL backend, sealing audit events before each commit (marlin.audit.backends)."""

from django.db.backends.postgresql import base

from marlin.audit.backends import SealsAuditEvents


class DatabaseWrapper(SealsAuditEvents, base.DatabaseWrapper):
    pass
