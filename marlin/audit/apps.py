from django.apps import AppConfig
from django.core import checks


class AuditConfig(AppConfig):
    name = "marlin.audit"
    label = "audit"

    def ready(self) -> None:
        from marlin.audit.keys import check_configured_keys

        checks.register(check_configured_keys)
