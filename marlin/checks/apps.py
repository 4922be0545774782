from django.apps import AppConfig


class ChecksConfig(AppConfig):
    name = "marlin.checks"
    label = "checks"
    verbose_name = "Checks"

    def ready(self) -> None:
        from marlin.agents.models import Candidate  # models load only once apps are ready
        from marlin.agents.signals import candidate_ready
        from marlin.checks.jobs import queue_checks_of_new_candidate

        candidate_ready.connect(
            queue_checks_of_new_candidate, sender=Candidate, dispatch_uid="checks.queue_checks"
        )
