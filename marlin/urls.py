from django.contrib import admin
from django.urls import include, path

from marlin import home
from marlin.api.api import api

urlpatterns = [
    path("", home.home, name="home"),
    path("account/", include("marlin.accounts.urls")),
    path("account/earnings/", include("marlin.review.pay_urls")),
    path("repositories/", include("marlin.catalog.urls")),
    path("tasks/", include("marlin.tasks.urls")),
    path("checks/", include("marlin.checks.urls")),
    path("agents/", include("marlin.agents.urls")),
    path("audit/", include("marlin.audit.urls")),
    path("compare/", include("marlin.review.urls")),
    path("review/", include("marlin.review.pipeline_urls")),
    path("leaderboard/", include("marlin.analytics.urls")),
    path("exports/", include("marlin.exports.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("marlin.monitoring.urls")),
]
