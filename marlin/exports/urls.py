from django.urls import path

from marlin.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.export_list, name="list"),
    path("<int:export_id>/", views.export_detail, name="detail"),
    path("<int:export_id>/files/<str:name>", views.export_file, name="file"),
]
