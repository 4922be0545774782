from django.urls import path

from marlin.catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.repository_list, name="list"),
    path("add/", views.repository_add, name="add"),
    path("import/", views.repository_import, name="import"),
    path("<int:pk>/", views.repository_detail, name="detail"),
    path("<int:pk>/mirror/", views.repository_mirror, name="mirror"),
]
