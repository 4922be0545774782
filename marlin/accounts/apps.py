from django.apps import AppConfig
from django.core import checks


class AccountsConfig(AppConfig):
    name = "marlin.accounts"
    label = "accounts"

    def ready(self) -> None:
        from marlin.accounts.sso import check_sso_settings

        checks.register(check_sso_settings)
