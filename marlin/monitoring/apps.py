from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "marlin.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from django_tasks.signals import task_finished, task_started

        from marlin.monitoring import jobs_observed

        # Every backend sends these where the job runs (django-tasks-db's loop, RQ's work horse,
        # the immediate backend inside the request), so one pair of receivers sees every job.
        task_started.connect(jobs_observed.job_started, dispatch_uid="monitoring.job_started")
        task_finished.connect(jobs_observed.job_finished, dispatch_uid="monitoring.job_finished")
