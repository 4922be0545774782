from django.urls import path

from marlin.agents import views

app_name = "agents"

urlpatterns = [
    path("", views.agent_list, name="list"),
    path("new/", views.agent_create, name="create"),
    path("<int:agent_id>/", views.agent_detail, name="detail"),
    path("<int:agent_id>/edit/", views.agent_edit, name="edit"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("turns/<int:turn_id>/retry/", views.turn_retry, name="turn_retry"),
    path("tasks/<int:task_id>/runs/", views.task_runs, name="task_runs"),
    path("tasks/<int:task_id>/pair/", views.task_pair, name="task_pair"),
    path("projects/<int:project_id>/pool/", views.project_pool, name="pool"),
]
