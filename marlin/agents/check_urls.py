from django.urls import path

from marlin.agents import check_views

app_name = "checks"
urlpatterns = [
    path("tasks/<int:task_id>/rerun/", check_views.rerun_checks, name="rerun"),
]
