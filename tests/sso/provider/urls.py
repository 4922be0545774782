from django.contrib.auth import views as auth_views
from django.urls import include, path

from tests.sso.provider import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("openid/", include("oidc_provider.urls", namespace="oidc_provider")),
    path("test-admin/<str:what>/", views.manage),
]
