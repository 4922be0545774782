from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "marlin.audit"
    label = "audit"
