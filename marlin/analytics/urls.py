from django.urls import path

from marlin.analytics import views

app_name = "analytics"
urlpatterns = [
    path("", views.project_list, name="projects"),
    path("<int:project_id>/", views.project_leaderboard, name="leaderboard"),
    path("<int:project_id>/experts/", views.project_experts, name="experts"),
    path("<int:project_id>/selection/", views.project_selection, name="selection"),
    path("<int:project_id>/weak-labels/", views.project_weak_labels, name="weak_labels"),
]
