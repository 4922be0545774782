from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "marlin.exports"
    label = "exports"
