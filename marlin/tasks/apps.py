from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "marlin.tasks"
    label = "tasks"
