from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "marlin.agents"
    label = "agents"
