from django.urls import path

from marlin.review import views

app_name = "review"

urlpatterns = [
    path("", views.queue_page, name="queue"),
    path("next/", views.queue_next, name="next"),
    path("<str:public_id>/", views.compare_page, name="compare"),
    path("<str:public_id>/file/<str:side>/<int:index>/", views.compare_file, name="file"),
    path("<str:public_id>/diff/<str:side>/", views.compare_side, name="side"),
    path("<str:public_id>/pair/<int:index>/", views.compare_pair, name="pair"),
    path("<str:public_id>/context/<str:side>/<int:index>/", views.compare_context, name="context"),
    path("<str:public_id>/trajectory/<str:side>/", views.compare_trajectory, name="trajectory"),
    path("<str:public_id>/status/", views.followup_status, name="status"),
    path("<str:public_id>/draft/", views.draft, name="draft"),
    path("<str:public_id>/submit/", views.submit, name="submit"),
    path("<str:public_id>/follow-up/", views.follow_up, name="follow_up"),
    path("<str:public_id>/release/", views.release, name="release"),
]
