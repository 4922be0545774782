"""The test provider's claims: the standard ones from the user row, `groups` (scope "groups")
from the user's Django groups, and a switch that makes the next ID tokens lie about their
audience or issuer, as a misconfigured or hostile provider would (still signed with its key)."""

from typing import Any

from django.utils.translation import gettext_lazy as _
from oidc_provider.lib.claims import ScopeClaims

# Claims to overwrite in every ID token signed from now on; set through the admin endpoint.
ID_TOKEN_OVERRIDES: dict[str, Any] = {}


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    claims["preferred_username"] = user.username
    claims["email"] = user.email
    claims["email_verified"] = True
    claims["given_name"] = user.first_name
    claims["family_name"] = user.last_name
    return claims


class GroupClaims(ScopeClaims):
    info_groups = (_("Groups"), _("The groups you belong to."))

    def scope_groups(self) -> dict[str, Any]:
        return {"groups": sorted(self.user.groups.values_list("name", flat=True))}


def tamper_with_id_token(id_token: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    id_token.update(ID_TOKEN_OVERRIDES)
    return id_token
