"""The expert's workspace: the queue, the blind comparison page and its partial responses.

Every URL names a comparison by its ``public_id`` and a side by its letter; nothing here puts a
run, turn, candidate or agent id into a URL, a page or a JSON answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.agents.actions import follow_up_refusal
from marlin.diffs.render import Mode
from marlin.errors import IllegalTransition
from marlin.permissions import role_required
from marlin.review import actions, activity, compare, queue
from marlin.review.forms import (
    CONFIDENCE_CHOICES,
    FollowUpForm,
    JudgmentForm,
    ReasonForm,
    draft_data,
    error_messages,
    judgment_form,
    rating_scale,
)
from marlin.review.models import Comparison, Judgment, JudgmentStatus, ReviewVerdict
from marlin.tasks.models import RubricVersion

VIEWERS = ("annotator", "reviewer", "adjudicator")
MODE_COOKIE = "marlin_diff_mode"


@dataclass
class Viewer:
    """Who looks at a comparison. An annotator working on it judges on ``version`` (their
    judgment's rubric version, or the current one before their first save); ``judgment`` is
    None until then."""

    is_annotator: bool
    judgment: Judgment | None = None
    version: RubricVersion | None = None

    @property
    def editable(self) -> bool:
        return self.is_annotator and (self.judgment is None or self.judgment.is_editable)


def _get_comparison(public_id: str) -> Comparison:
    return get_object_or_404(
        Comparison.objects.select_related(
            "project__rubric", "task__repository", "task__created_by", "run_a", "run_b"
        ),
        public_id=public_id,
    )


def _viewer(request: AuthenticatedHttpRequest, comparison: Comparison) -> Viewer:
    """Who is looking, without writing anything: the annotator working on the comparison, or a
    reviewer, adjudicator or admin reading it. Raise NotAssigned for an annotator who may not
    work on it."""
    user = request.user
    if user.has_role("annotator") and (
        comparison.is_held_by(user) or not user.has_role("admin", "reviewer", "adjudicator")
    ):
        judgment = actions.check_assigned(user, comparison)
        if judgment is None:
            return Viewer(True, None, comparison.project.rubric.current_version())
        return Viewer(True, judgment, judgment.rubric_version)
    if user.has_role("admin", "reviewer", "adjudicator"):
        return Viewer(False)
    raise Http404("No such comparison.")


def comparison_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponseBase]:
    """Resolve the comparison and the viewer; answer refusals (the actions' too) with their
    message, never a trace. Nothing here writes: work starts with the annotator's first POST."""

    @role_required(*VIEWERS)
    @wraps(view)
    def wrapped(
        request: AuthenticatedHttpRequest, public_id: str, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        comparison = _get_comparison(public_id)
        try:
            viewer = _viewer(request, comparison)
            return view(request, comparison, viewer, *args, **kwargs)
        except PermissionDenied as exc:
            return _refuse(request, str(exc), 403)
        except compare.CompareError as exc:
            return _refuse(request, str(exc), 400)

    return wrapped


def _refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return render(request, "review/refused.html", {"message": message}, status=status)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") or request.path.endswith(
        "/draft/"
    )


def _mode(request: HttpRequest) -> Mode:
    mode = request.GET.get("mode") or request.COOKIES.get(MODE_COOKIE, "split")
    return "unified" if mode == "unified" else "split"


def _view(request: HttpRequest) -> compare.View:
    return "incremental" if request.GET.get("view") == "incremental" else "cumulative"


# The queue ---------------------------------------------------------------------------------


@role_required("annotator")
def queue_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    mine = (
        Judgment.objects.filter(annotator=request.user)
        .select_related("comparison__task", "comparison__project")
        .order_by("-updated_at")[:50]
    )
    return render(
        request,
        "review/queue.html",
        {"summary": queue.queue_summary(request.user), "judgments": mine},
    )


@require_POST
@role_required("annotator")
def queue_next(request: AuthenticatedHttpRequest) -> HttpResponse:
    comparison = queue.next_comparison(request.user)
    if comparison is None:
        messages.info(
            request,
            "Nothing to judge right now: every comparison you may take has all the judgments "
            "it needs.",
        )
        return redirect("review:queue")
    return redirect("review:compare", public_id=comparison.public_id)


@require_POST
@comparison_view
def release(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(error_messages(form)))
        return redirect("review:compare", public_id=comparison.public_id)
    actions.do_release_claim(request.user, comparison, reason=form.cleaned_data["reason"])
    messages.success(request, "Comparison given back to the queue. Your draft, if any, is kept.")
    return redirect("review:queue")


# The page ----------------------------------------------------------------------------------


@require_GET
@comparison_view
def compare_page(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    stash = request.session.pop(_stash_key(comparison), None)
    if not stash or not viewer.editable or viewer.version is None:
        return _render_page(request, comparison, viewer)
    form = None
    if stash["posted"]:
        form = judgment_form(comparison, request.user, MultiValueDict(stash["posted"]))
        form.is_valid()
    errors = {name: " ".join(msgs) for name, msgs in stash["errors"].items()}
    return _render_page(
        request, comparison, viewer, form=form, errors=errors, notice=stash["notice"]
    )


def _render_page(
    request: AuthenticatedHttpRequest,
    comparison: Comparison,
    viewer: Viewer,
    *,
    form: JudgmentForm | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    """The page; for the annotator with their judgment form, unbound (showing the saved draft)
    or as they posted it, with the errors that stopped it."""
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    context = compare.comparison_context(
        comparison, request.user, turn=turn, view=_view(request), mode=_mode(request)
    )
    if viewer.version is not None:  # the annotator working on it
        judgment = viewer.judgment
        state = JudgmentStatus(judgment.status if judgment else JudgmentStatus.DRAFT)
        context.update(
            _judgment_context(
                form or _saved_form(comparison, viewer, viewer.version), errors or {}
            ),
            judgment=judgment,
            status=state.value,
            status_label=state.label,
            draft_revision=judgment.draft_revision if judgment else 0,
            editable=viewer.editable,
            min_rationale=comparison.project.min_rationale_chars,
            rubric_version=viewer.version,
            revision_notes=_revision_notes(judgment),
            active_seconds=actions.active_seconds_so_far(judgment) if judgment else 0,
            activity=activity.page_settings(
                request.user, "judgment", comparison.public_id, comparison=comparison.public_id
            ),
        )
    context.update(
        notice=notice,
        is_annotator=viewer.is_annotator,
        followup=compare.followup_status(comparison),
        followup_refusal=follow_up_refusal([comparison.run_a_id, comparison.run_b_id]),
        urls=_urls(comparison),
    )
    return render(request, "review/compare.html", context, status=status)


def _saved_form(comparison: Comparison, viewer: Viewer, version: RubricVersion) -> JudgmentForm:
    """The judgment form showing what the server holds (nothing yet before the first save)."""
    judgment = viewer.judgment
    initial = (
        draft_data(actions.draft_of(judgment), revision=judgment.draft_revision)
        if judgment is not None
        else {}
    )
    return JudgmentForm(version=version, turn_count=comparison.turn_count, initial=initial)


def _judgment_context(form: JudgmentForm, errors: dict[str, str]) -> dict[str, Any]:
    """What review/_judgment_form.html shows: every field's value (as saved, or as posted) and
    its error, from the form's own checks or from submitting."""
    errors = {name: " ".join(map(str, msgs)) for name, msgs in form.errors.items()} | errors
    general = [errors.pop(name) for name in _GENERAL_FIELDS if name in errors]
    scale = rating_scale()
    criteria = [
        {
            **criterion,
            "selected": _value(field),
            "error": errors.get(field.name),
            "missing": bool(errors.get("ratings")) and not _value(field),
            "scale": scale,
        }
        for criterion, field in form.rating_rows()
    ]
    overall = {
        **form.version.overall_criterion,
        "selected": _value(form["overall"]),
        "scale": scale,
    }
    names = {c["key"]: c["name"] for c in criteria}
    error_list = [
        (_field_label(name, names), message)
        for name, message in errors.items()
        if name not in ("form", *_GENERAL_FIELDS)
    ]
    return {
        "rating_scale": scale,
        "judgment_form": form,
        "error_list": error_list,
        "criteria": criteria,
        "overall": overall,
        "rationale": form["rationale"].value() or "",
        "confidence": _value(form["confidence"]),
        "confidence_choices": CONFIDENCE_CHOICES,
        "comments_value": form["comments"].value() or "[]",
        "turn_notes": [
            (n, field.value() or "", errors.get(field.name)) for n, field in form.turn_note_rows()
        ],
        "turn_verdicts": [
            (str(n), _value(field), errors.get(field.name) or "")
            for n, field in form.turn_verdict_rows()
        ],
        "errors": errors | ({"form": " ".join(general)} if general else {}),
    }


# Errors without a field of their own on the page: shown at the top of the form.
_GENERAL_FIELDS = ("__all__", "form", "draft_revision")
_FIELD_LABELS = {
    "overall": "Overall preference",
    "ratings": "Ratings",
    "rationale": "Rationale",
    "confidence": "Confidence",
    "comments": "Line comments",
}


def _field_label(name: str, criteria: dict[str, str]) -> str:
    if name.startswith("rating-"):
        return criteria.get(name.removeprefix("rating-"), name)
    if name.startswith("turn_verdict-"):
        return f"Preference on turn {name.removeprefix('turn_verdict-')}"
    if name.startswith("turn_note-"):
        return f"Remark on turn {name.removeprefix('turn_note-')}"
    return _FIELD_LABELS.get(name, name)


def _value(field: Any) -> str:
    value = field.value()
    return "" if value is None else str(value).strip()


def _revision_notes(judgment: Judgment | None) -> list[str]:
    """What reviewers asked the annotator to change (without naming the reviewers)."""
    if judgment is None or judgment.status != JudgmentStatus.REVISION_REQUESTED:
        return []
    requests = judgment.reviews.filter(verdict=ReviewVerdict.REVISION).order_by("-created_at")
    return [review.reason for review in requests[:5]]


def _urls(comparison: Comparison) -> dict[str, str]:
    pid = comparison.public_id
    return {
        name: reverse(f"review:{name}", kwargs={"public_id": pid})
        for name in ("compare", "draft", "submit", "follow_up", "status", "release")
    } | {"base": f"/compare/{pid}/"}


# Pieces loaded by the page -------------------------------------------------------------------


@require_GET
@comparison_view
def compare_file(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer, side: str, index: int
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    html = compare.render_side_file(
        comparison,
        compare.check_side(side),
        turn,
        _view(request),
        index,
        _mode(request),
        force=request.GET.get("force") == "1",
    )
    return HttpResponse(html)


@require_GET
@comparison_view
def compare_pair(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer, index: int
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    html = compare.render_pair_file(
        comparison, turn, _view(request), index, force=request.GET.get("force") == "1"
    )
    return HttpResponse(html)


@require_GET
@comparison_view
def compare_side(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer, side: str
) -> HttpResponse:
    """One side's diff; with ``panel=1`` its file tree too (the side's tab, opened the first
    time), otherwise the files alone (a layout switch)."""
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    letter = compare.check_side(side)
    html = compare.render_side_patch(comparison, letter, turn, _view(request), _mode(request))
    if request.GET.get("panel") != "1":
        return HttpResponse(html)
    return render(
        request,
        "review/_side_panel.html",
        {
            "tree": compare.side_tree(comparison, letter, turn, _view(request)),
            "files_html": html,
            "side": {"letter": letter, "prefix": compare.PREFIX[letter]},
        },
    )


@require_GET
@comparison_view
def compare_context(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer, side: str, index: int
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    try:
        start = int(request.GET.get("from", ""))
        end = int(request.GET["to"]) if request.GET.get("to") else None
        new_start = int(request.GET["new_from"]) if request.GET.get("new_from") else None
    except ValueError:
        raise compare.CompareError("from, to and new_from must be line numbers.") from None
    html = compare.context_rows(
        comparison, compare.check_side(side), turn, index, start, end, new_start, _mode(request)
    )
    return HttpResponse(html)


@require_GET
@comparison_view
def compare_trajectory(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer, side: str
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    steps = compare.trajectory(comparison, compare.check_side(side), turn)
    return render(request, "review/_trajectory.html", {"steps": steps, "letter": side.upper()})


@require_GET
@comparison_view
def followup_status(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    return render(
        request,
        "review/_followup_status.html",
        {"followup": compare.followup_status(comparison), "urls": _urls(comparison)},
    )


# Drafts, submission, follow-ups -----------------------------------------------------------
# Work starts here: the first of these POSTs starts the annotator's judgment (do_start_judgment
# checks the claim and writes the audit event); the page itself only reads.


@require_http_methods(["GET", "POST"])
@comparison_view
def draft(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    if request.method == "GET":
        if viewer.judgment is None:
            return JsonResponse({"error": "You have no draft on this comparison."}, status=404)
        return JsonResponse(_draft_json(viewer.judgment))
    form = judgment_form(comparison, request.user, request.POST)
    if not form.is_valid():
        return JsonResponse(
            {"error": " ".join(error_messages(form)), "fields": form.errors}, status=400
        )
    try:
        judgment = actions.do_start_judgment(request.user, comparison)
        judgment = actions.do_save_draft(
            request.user, judgment, form.draft(), revision=form.cleaned_data["draft_revision"]
        )
    except actions.StaleDraft as exc:
        return JsonResponse({"error": str(exc), **_draft_json(exc.current)}, status=409)
    except actions.JudgmentClosed as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse(
        {
            "revision": judgment.draft_revision,
            "saved_at": timezone.localtime(judgment.updated_at).strftime("%H:%M:%S"),
            "checks_shown": compare.checks_visible(comparison, request.user),
            "active_seconds": actions.active_seconds_so_far(judgment),
        }
    )


def _draft_json(judgment: Judgment) -> dict[str, Any]:
    return {
        "revision": judgment.draft_revision,
        "status": judgment.status,
        "draft": actions.draft_of(judgment),
    }


@require_POST
@comparison_view
def submit(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    """Submit, or go back to the page (POST/redirect/GET) with what stopped it, per field; a
    reload of that page never posts again."""
    form = judgment_form(comparison, request.user, request.POST)
    if not form.is_valid():
        # Nothing saved: the page shows what was posted, checked again, with its errors.
        return _back_to_page(
            request, comparison, notice="Nothing was submitted: fix what is marked below."
        )
    try:
        judgment = actions.do_start_judgment(request.user, comparison)
        judgment = actions.do_save_draft(
            request.user, judgment, form.draft(), revision=form.cleaned_data["draft_revision"]
        )
        actions.do_submit_judgment(request.user, judgment)
    except actions.StaleDraft as exc:
        return _back_to_page(
            request,
            comparison,
            notice=str(exc),
            errors={"form": ["Nothing was submitted: check the form below and submit again."]},
        )
    except ValidationError as exc:
        return _back_to_page(
            request,
            comparison,
            posted=False,
            errors=exc.message_dict,
            notice="Not submitted yet: your draft is saved; fix what is marked below.",
        )
    except actions.JudgmentClosed as exc:
        messages.info(request, str(exc))
        return redirect("review:compare", public_id=comparison.public_id)
    messages.success(
        request, "Judgment submitted. Thank you — take the next comparison when ready."
    )
    return redirect("review:queue")


def _stash_key(comparison: Comparison) -> str:
    return f"marlin-submit-{comparison.public_id}"


def _back_to_page(
    request: AuthenticatedHttpRequest,
    comparison: Comparison,
    *,
    notice: str,
    errors: dict[str, list[str]] | None = None,
    posted: bool = True,
) -> HttpResponse:
    """Keep what stopped a submission (and, unless it was saved as the draft, what was posted)
    in the session for the next GET of the page, which shows it once."""
    request.session[_stash_key(comparison)] = {
        "notice": notice,
        "errors": {name: [str(m) for m in msgs] for name, msgs in (errors or {}).items()},
        "posted": dict(request.POST.lists()) if posted else None,
    }
    return redirect("review:compare", public_id=comparison.public_id)


@require_POST
@comparison_view
def follow_up(
    request: AuthenticatedHttpRequest, comparison: Comparison, viewer: Viewer
) -> HttpResponse:
    form = FollowUpForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(error_messages(form)))
        return redirect("review:compare", public_id=comparison.public_id)
    try:
        actions.do_ask_follow_up(request.user, comparison, form.cleaned_data["prompt"])
    except actions.JudgmentClosed as exc:
        raise PermissionDenied(str(exc)) from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except IllegalTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, "Follow-up sent to both sides. The new turn appears here when both finish."
        )
    return redirect("review:compare", public_id=comparison.public_id)
