from django.apps import AppConfig


class MarlinConfig(AppConfig):
    """Holds the project-wide templates, static files, template tags and management commands."""

    name = "marlin"
    label = "marlin"
