"""The provider's administration for the tests (users, groups, the client, ID token
overrides), as JSON over HTTP so a test changes the provider while it runs. Guarded by a token
the test process passes in the environment."""

import hmac
import json
import os

from django.contrib.auth.models import Group, User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oidc_provider.models import Client, ResponseType

from tests.sso.provider.hooks import ID_TOKEN_OVERRIDES


@csrf_exempt
@require_POST
def manage(request: HttpRequest, what: str) -> HttpResponse:
    token = request.headers.get("X-Provider-Admin", "")
    if not hmac.compare_digest(token, os.environ["PROVIDER_ADMIN_TOKEN"]):
        return JsonResponse({"error": "forbidden"}, status=403)
    data = json.loads(request.body)
    if what == "user":
        user, _ = User.objects.get_or_create(username=data["username"])
        user.set_password(data["password"])
        user.email = data.get("email", "")
        user.first_name = data.get("first_name", "")
        user.last_name = data.get("last_name", "")
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in data["groups"]])
        return JsonResponse({"sub": str(user.pk)})
    if what == "client":
        client, _ = Client.objects.update_or_create(
            client_id=data["client_id"],
            defaults={
                "name": data["client_id"],
                "client_type": "confidential",
                "client_secret": data["client_secret"],
                "require_consent": False,
                "reuse_consent": True,
                "jwt_alg": "RS256",
                "_redirect_uris": "\n".join(data["redirect_uris"]),
                "_post_logout_redirect_uris": "\n".join(data["post_logout_redirect_uris"]),
            },
        )
        client.response_types.set(ResponseType.objects.filter(value="code"))
        return JsonResponse({"client_id": client.client_id})
    if what == "id-token-overrides":
        ID_TOKEN_OVERRIDES.clear()
        ID_TOKEN_OVERRIDES.update(data)
        return JsonResponse(ID_TOKEN_OVERRIDES)
    return JsonResponse({"error": f"unknown {what}"}, status=404)
