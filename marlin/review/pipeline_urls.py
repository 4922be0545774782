from django.urls import path

from marlin.review import pipeline_views as views

app_name = "pipeline"

urlpatterns = [
    path("queue/", views.review_queue, name="queue"),
    path("adjudicate/", views.adjudication_queue, name="adjudication_queue"),
    path("revisions/", views.revisions, name="revisions"),
    path("projects/<int:project_id>/rereview/", views.rereview, name="rereview"),
    path("<str:public_id>/judgments/<int:judgment_id>/", views.review_judgment, name="review"),
    path("<str:public_id>/adjudicate/", views.adjudicate, name="adjudicate"),
    path("<str:public_id>/decision/", views.decision_page, name="decision"),
    path("<str:public_id>/timeline/", views.timeline, name="timeline"),
    path("<str:public_id>/void/", views.void, name="void"),
]
