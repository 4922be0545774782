from django.urls import path

from marlin.review import pay_views

app_name = "earnings"


urlpatterns = [
    path("", pay_views.my_earnings, name="mine"),
    path("payroll.csv", pay_views.payroll_csv, name="payroll"),
    path("adjust/", pay_views.adjust, name="adjust"),
    path("dashboard/", pay_views.dashboard, name="dashboard"),
]
