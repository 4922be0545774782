from django.urls import path

from marlin.tasks import views

app_name = "tasks"
urlpatterns = [
    path("", views.task_list, name="list"),
    path("new/", views.task_create, name="create"),
    path("<int:task_id>/", views.task_detail, name="detail"),
    path("<int:task_id>/edit/", views.task_edit, name="edit"),
    path("<int:task_id>/review/", views.task_review, name="review"),
    path("<int:task_id>/status/", views.task_status, name="status"),
    path("projects/", views.project_list, name="projects"),
    path("projects/new/", views.project_form, name="project_create"),
    path("projects/<int:project_id>/", views.project_detail, name="project"),
    path("projects/<int:project_id>/edit/", views.project_form, name="project_edit"),
    path("rubrics/<int:rubric_id>/", views.rubric_detail, name="rubric"),
    path("rubrics/<int:rubric_id>/history/", views.rubric_history, name="rubric_history"),
    path("rubrics/<int:rubric_id>/edit/", views.rubric_edit, name="rubric_edit"),
]
