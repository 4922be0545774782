from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "marlin.catalog"
    label = "catalog"
