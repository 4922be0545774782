from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "marlin.review"
    label = "review"
