from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from marlin.accounts import actions, sso
from marlin.accounts.forms import ExpertProfileForm, TokenForm
from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import ApiToken, ExpertProfile, User


@login_required
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Reading the page writes nothing: a missing profile is created, audited, by the first save.
    profile_row = ExpertProfile.objects.filter(user=request.user).first() or ExpertProfile(
        user=request.user
    )
    new_token = None
    if request.method == "POST" and request.POST.get("form") == "profile":
        form = ExpertProfileForm(request.POST)
        if form.is_valid():
            actions.do_update_profile(request.user, profile_row, form.changes())
            messages.success(request, "Profile saved.")
            return redirect("profile")
    else:
        form = ExpertProfileForm.for_profile(profile_row)
    token_form = TokenForm()
    if request.method == "POST" and request.POST.get("form") == "token":
        token_form = TokenForm(request.POST)
        if token_form.is_valid():
            _, new_token = actions.do_issue_token(request.user, token_form.cleaned_data["name"])
            token_form = TokenForm()
    tokens = request.user.api_tokens.order_by("-created_at")
    return render(
        request,
        "accounts/profile.html",
        {"form": form, "token_form": token_form, "tokens": tokens, "new_token": new_token},
    )


@login_required
@require_POST
def revoke_token(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    # Only your own tokens: someone else's id answers 404, not 403, so ids reveal nothing.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    actions.do_revoke_token(request.user, token)
    messages.success(request, f"Token {token.name!r} revoked.")
    return redirect("profile")


# Logging in and out: with a password (unless MARLIN_OIDC_ONLY), or through the identity
# provider (marlin/accounts/sso.py). Each attempt, either way, is an audit event.

SSO_ONLY_MESSAGE = (
    "Password login is turned off on this server: log in with {name} instead. "
    "Scripts keep working with an API token (Authorization: Bearer mrl_...)."
)


class MarlinLoginView(LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **_login_choices()}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.OIDC_ONLY:
            username = str(request.POST.get("username", ""))[:150]
            actions.do_record_login_failure(username, "password", "password login is turned off")
            return _login_page(
                request, SSO_ONLY_MESSAGE.format(name=settings.OIDC_PROVIDER_NAME), status=403
            )
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        actions.do_record_login(form.get_user(), "password")
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        username = str(form.data.get("username", ""))[:150]
        reason = " ".join(str(error) for error in form.non_field_errors()) or "invalid form"
        actions.do_record_login_failure(username, "password", reason)
        return super().form_invalid(form)


def _login_choices() -> dict[str, Any]:
    return {
        "sso_enabled": settings.OIDC_ENABLED,
        "sso_name": settings.OIDC_PROVIDER_NAME,
        "password_login": not settings.OIDC_ONLY,
    }


def _login_page(request: HttpRequest, error: str, *, status: int) -> HttpResponse:
    context = {"form": AuthenticationForm(request), "login_error": error, **_login_choices()}
    return render(request, "registration/login.html", context, status=status)


SSO_FAILED = "Single sign-on did not log you in: {reason} Try again, or ask an admin."


class SsoStartView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider with a fresh state, nonce and PKCE challenge."""

    def __init__(self, **kwargs: Any) -> None:
        # Not the library's __init__, which reads the endpoint before a failure can be shown.
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            return _login_page(request, "Single sign-on is not set up on this server.", status=404)
        try:
            self.OIDC_OP_AUTH_ENDPOINT = sso.endpoint(
                "OIDC_OP_AUTHORIZATION_ENDPOINT", "authorization_endpoint"
            )
        except sso.ProviderUnavailable as exc:
            actions.do_record_login_failure("", "sso", str(exc))
            return _login_page(request, SSO_FAILED.format(reason=str(exc)), status=502)
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: the library checks the state and exchanges the
    code; every way this can fail becomes a login page that says why, and an audit event."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            return _login_page(request, "Single sign-on is not set up on this server.", status=404)
        try:
            return super().get(request)
        except SuspiciousOperation:
            # The library's one refusal here: a state this browser's session never sent.
            reason = "the answer does not belong to a login started in this browser."
            status = 400
        except actions.SsoRefused as exc:
            reason, status = str(exc), 403
        except sso.ProviderUnavailable as exc:
            reason, status = str(exc), 502
        actions.do_record_login_failure("", "sso", reason)
        return _login_page(request, SSO_FAILED.format(reason=reason), status=status)

    def login_failure(self) -> HttpResponse:
        error = self.request.GET.get("error")
        if error:  # the provider's own refusal (the person cancelled, no access to this client)
            detail = self.request.GET.get("error_description") or error
            reason = f"the identity provider answered {detail[:200]!r}."
        elif "code" not in self.request.GET:
            reason = "the identity provider's answer has no code."
        else:
            reason = "this browser started no login (its session has no login state)."
        actions.do_record_login_failure("", "sso", reason)
        return _login_page(self.request, SSO_FAILED.format(reason=reason), status=400)

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        actions.do_record_login(self.user, "sso", detail={"issuer": settings.OIDC_ISSUER})
        return response


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """End the Marlin session and, after a single sign-on login, the provider's too."""
    id_token = request.session.get("oidc_id_token")
    user = request.user if request.user.is_authenticated else None
    auth.logout(request)
    if isinstance(user, User):
        actions.do_record_logout(user, detail={"method": "sso" if id_token else "password"})
    if id_token and settings.OIDC_ENABLED:
        back = request.build_absolute_uri(reverse("login"))
        url = sso.end_session_url(id_token, post_logout_redirect_uri=back)
        if url:
            return redirect(url)
    return redirect(settings.LOGOUT_REDIRECT_URL)
