from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "marlin.analytics"
    label = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Pairing sits a layer below analytics, so the active planner (which needs the
        # leaderboard fit) registers itself with it here.
        from marlin.agents.pairing import PLANNERS
        from marlin.analytics.active import plan_pairs

        PLANNERS["active"] = plan_pairs
