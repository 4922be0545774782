from django.urls import path

from marlin.checks import views

app_name = "checks"
urlpatterns = [
    path("tasks/<int:task_id>/rerun/", views.rerun_checks, name="rerun"),
]
