from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from marlin.accounts import actions
from marlin.accounts.forms import ExpertProfileForm, TokenForm
from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import ApiToken, ExpertProfile


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
