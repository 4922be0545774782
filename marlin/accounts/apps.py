from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "marlin.accounts"
    label = "accounts"
