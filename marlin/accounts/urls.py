from django.contrib.auth import views as auth_views
from django.urls import path

from marlin.accounts import views

urlpatterns = [
    path("login/", views.MarlinLoginView.as_view(), name="login"),
    path("logout/", views.logout, name="logout"),
    path("sso/start/", views.SsoStartView.as_view(), name="sso_start"),
    path("sso/callback/", views.SsoCallbackView.as_view(), name="sso_callback"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(success_url="/account/password/done/"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("profile/", views.profile, name="profile"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
]
