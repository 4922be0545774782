from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "marlin.review"
    label = "review"

    def ready(self) -> None:
        from marlin.agents.models import Candidate  # models load only once apps are ready
        from marlin.agents.signals import candidate_ready
        from marlin.review.comparisons import comparison_for_new_candidate

        candidate_ready.connect(
            comparison_for_new_candidate, sender=Candidate, dispatch_uid="review.comparisons"
        )
