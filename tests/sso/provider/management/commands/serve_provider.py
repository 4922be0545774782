from django.core.management import call_command
from django.core.management.base import BaseCommand
from oidc_provider.models import RSAKey


class Command(BaseCommand):
    help = "Set up the test provider's database and signing key, then serve it."

    def add_arguments(self, parser):
        parser.add_argument("addrport")

    def handle(self, *args, addrport: str, **options):
        call_command("migrate", verbosity=0)
        if not RSAKey.objects.exists():
            call_command("creatersakey")
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
