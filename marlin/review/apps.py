from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "marlin.review"
    label = "review"

    def ready(self) -> None:
        from marlin.agents.models import Candidate  # models load only once apps are ready
        from marlin.agents.signals import candidate_ready
        from marlin.audit.signals import log_verified
        from marlin.review.comparisons import comparison_for_new_candidate
        from marlin.review.pay_reconcile import pay_problems

        candidate_ready.connect(
            comparison_for_new_candidate, sender=Candidate, dispatch_uid="review.comparisons"
        )
        # `marlin audit verify` recomputes every project's pay from the verified log.
        log_verified.connect(pay_problems, dispatch_uid="review.pay")
