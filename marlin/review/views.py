"""The expert's workspace: the queue, the blind comparison page and its partial responses.

Every URL names a comparison by its ``public_id`` and a side by its letter; nothing here puts a
run, turn, candidate or agent id into a URL, a page or a JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from marlin.permissions import role_required
from marlin.review import actions, compare, queue
from marlin.review.forms import (
    NOT_APPLICABLE,
    Draft,
    draft_from_post,
    revision_from_post,
)
from marlin.review.models import Comparison, Judgment, JudgmentStatus, ReviewVerdict
from marlin.tasks.rubric import SCALE_7

VIEWERS = ("annotator", "reviewer", "adjudicator")
MODE_COOKIE = "marlin_diff_mode"
SCALE_SHORT = {-3: "A3", -2: "A2", -1: "A1", 0: "=", 1: "B1", 2: "B2", 3: "B3"}


@dataclass
class Viewer:
    judgment: Judgment | None
    editable: bool
    is_annotator: bool


def _get_comparison(public_id: str) -> Comparison:
    return get_object_or_404(
        Comparison.objects.select_related(
            "project__rubric", "task__repository", "task__created_by", "run_a", "run_b"
        ),
        public_id=public_id,
    )


def _viewer(request: HttpRequest, comparison: Comparison, *, start: bool = False) -> Viewer:
    """Who is looking: the annotator working on it, or a reviewer/adjudicator/admin reading it."""
    user = request.user
    judgment = Judgment.objects.filter(comparison=comparison, annotator=user).first()
    holds = judgment is not None or queue.open_claim(user, comparison) is not None
    if user.has_role("annotator") and (
        holds or not user.has_role("admin", "reviewer", "adjudicator")
    ):
        if start and (judgment is None or judgment.status in actions.EDITABLE):
            judgment = actions.do_start_judgment(user, comparison)
        else:
            judgment = actions.ensure_assigned(user, comparison) or judgment
        editable = judgment is not None and judgment.status in actions.EDITABLE
        return Viewer(judgment=judgment, editable=editable, is_annotator=True)
    if user.has_role("admin", "reviewer", "adjudicator"):
        return Viewer(judgment=None, editable=False, is_annotator=False)
    raise Http404("No such comparison.")


def comparison_view(view: Callable[..., HttpResponse] | None = None, *, start: bool = False) -> Any:
    """Resolve the comparison and the viewer; answer refusals with a message, never a trace.
    ``start=True`` (the page itself) starts the annotator's draft judgment."""
    if view is None:
        return lambda v: comparison_view(v, start=start)

    @role_required(*VIEWERS)
    @wraps(view)
    def wrapped(request: HttpRequest, public_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        comparison = _get_comparison(public_id)
        try:
            viewer = _viewer(request, comparison, start=start)
            return view(request, comparison, viewer, *args, **kwargs)
        except actions.NotAssigned as exc:
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


def _mode(request: HttpRequest) -> str:
    mode = request.GET.get("mode") or request.COOKIES.get(MODE_COOKIE, "split")
    return mode if mode in ("split", "unified") else "split"


def _view(request: HttpRequest) -> str:
    return "incremental" if request.GET.get("view") == "incremental" else "cumulative"


# The queue ---------------------------------------------------------------------------------


@role_required("annotator")
def queue_page(request: HttpRequest) -> HttpResponse:
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
def queue_next(request: HttpRequest) -> HttpResponse:
    comparison = queue.next_comparison(request.user)
    if comparison is None:
        messages.info(
            request,
            "Nothing to judge right now: every comparison you may take has all the judgments it needs.",
        )
        return redirect("review:queue")
    return redirect("review:compare", public_id=comparison.public_id)


@require_POST
@comparison_view
def release(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    actions.do_release_claim(request.user, comparison, reason=request.POST.get("reason", ""))
    messages.success(request, "Comparison given back to the queue. Your draft, if any, is kept.")
    return redirect("review:queue")


# The page ----------------------------------------------------------------------------------


@require_GET
@comparison_view(start=True)
def compare_page(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    return _render_page(request, comparison, viewer)


def _render_page(
    request: HttpRequest,
    comparison: Comparison,
    viewer: Viewer,
    *,
    draft: Draft | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    context = compare.comparison_context(
        comparison, request.user, turn=turn, view=_view(request), mode=_mode(request)
    )
    judgment = viewer.judgment
    if judgment is not None:
        version = judgment.rubric_version
        state = draft or actions.draft_of(judgment)
        context.update(
            judgment=judgment,
            editable=viewer.editable,
            criteria=_criteria_state(version, state),
            overall=_overall_state(version, state),
            state=state,
            comments_value=json.dumps(state["comments"]),
            turn_notes=[(n, state["turn_notes"].get(str(n), "")) for n in context["turns"]],
            errors=errors or {},
            min_rationale=comparison.project.min_rationale_chars,
            confidence_choices=[
                (1, "guessing"),
                (2, "unsure"),
                (3, "fairly sure"),
                (4, "sure"),
                (5, "certain"),
            ],
            rubric_version=version,
            revision_notes=_revision_notes(judgment),
        )
    context.update(
        notice=notice,
        is_annotator=viewer.is_annotator,
        followup=compare.followup_status(comparison),
        urls=_urls(comparison),
    )
    return render(request, "review/compare.html", context, status=status)


def _revision_notes(judgment: Judgment) -> list[str]:
    """What reviewers asked the annotator to change (without naming the reviewers)."""
    if judgment.status != JudgmentStatus.REVISION_REQUESTED:
        return []
    requests = judgment.reviews.filter(verdict=ReviewVerdict.REVISION).order_by("-created_at")
    return [review.reason for review in requests[:5]]


def _urls(comparison: Comparison) -> dict[str, str]:
    pid = comparison.public_id
    return {
        name: reverse(f"review:{name}", kwargs={"public_id": pid})
        for name in ("compare", "draft", "submit", "follow_up", "status", "release")
    } | {"base": f"/compare/{pid}/"}


def _criteria_state(version: Any, state: Draft) -> list[dict[str, Any]]:
    out = []
    for criterion in version.rated_criteria:
        key = criterion["key"]
        if key in state["ratings"]:
            value = state["ratings"][key]
            selected = NOT_APPLICABLE if value is None else str(value)
        else:
            selected = ""
        out.append({**criterion, "selected": selected, "scale": _scale()})
    return out


def _overall_state(version: Any, state: Draft) -> dict[str, Any]:
    selected = "" if state["overall"] is None else str(state["overall"])
    return {**version.overall_criterion, "selected": selected, "scale": _scale()}


def _scale() -> list[dict[str, Any]]:
    return [{"value": str(v), "label": label, "short": SCALE_SHORT[v]} for v, label in SCALE_7]


# Pieces loaded by the page -------------------------------------------------------------------


@require_GET
@comparison_view
def compare_file(
    request: HttpRequest, comparison: Comparison, viewer: Viewer, side: str, index: int
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
def compare_side(
    request: HttpRequest, comparison: Comparison, viewer: Viewer, side: str
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    html = compare.render_side_patch(
        comparison, compare.check_side(side), turn, _view(request), _mode(request)
    )
    return HttpResponse(html)


@require_GET
@comparison_view
def compare_context(
    request: HttpRequest, comparison: Comparison, viewer: Viewer, side: str, index: int
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
    request: HttpRequest, comparison: Comparison, viewer: Viewer, side: str
) -> HttpResponse:
    turn = compare.check_turn(comparison, request.GET.get("turn"))
    steps = compare.trajectory(comparison, compare.check_side(side), turn)
    return render(request, "review/_trajectory.html", {"steps": steps, "letter": side.upper()})


@require_GET
@comparison_view
def followup_status(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    return render(
        request,
        "review/_followup_status.html",
        {"followup": compare.followup_status(comparison), "urls": _urls(comparison)},
    )


# Drafts, submission, follow-ups -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@comparison_view(start=True)
def draft(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    judgment = viewer.judgment
    if request.method == "GET":
        if judgment is None:
            return JsonResponse({"error": "You have no draft on this comparison."}, status=404)
        return JsonResponse(_draft_json(judgment))
    if judgment is None:
        return JsonResponse(
            {"error": "Only the annotator working on this comparison has a draft."}, status=403
        )
    if not viewer.editable:
        return JsonResponse(
            {"error": "This judgment was submitted and is final; it can no longer change."},
            status=409,
        )
    try:
        data = draft_from_post(
            request.POST, judgment.rubric_version, turn_count=comparison.turn_count
        )
        revision = revision_from_post(request.POST)
        judgment = actions.do_save_draft(request.user, judgment, data, revision=revision)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    except actions.StaleDraft as exc:
        return JsonResponse({"error": str(exc), **_draft_json(exc.current)}, status=409)
    except actions.JudgmentClosed as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse(
        {
            "revision": judgment.draft_revision,
            "saved_at": timezone.localtime(judgment.updated_at).strftime("%H:%M:%S"),
            "checks_shown": compare.checks_visible(comparison, request.user),
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
def submit(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    judgment = viewer.judgment
    if judgment is None or not viewer.editable:
        raise PermissionDenied("You have no open judgment on this comparison to submit.")
    try:
        posted = draft_from_post(
            request.POST, judgment.rubric_version, turn_count=comparison.turn_count
        )
        revision = revision_from_post(request.POST)
    except ValidationError as exc:
        return _render_page(
            request, comparison, viewer, errors={"form": " ".join(exc.messages)}, status=400
        )
    try:
        judgment = actions.do_save_draft(request.user, judgment, posted, revision=revision)
        viewer.judgment = actions.do_submit_judgment(request.user, judgment)
    except actions.StaleDraft as exc:
        viewer.judgment = exc.current
        return _render_page(
            request,
            comparison,
            viewer,
            draft=posted,
            notice=str(exc),
            status=409,
            errors={"form": "Nothing was submitted: check the form below and submit again."},
        )
    except ValidationError as exc:
        viewer.judgment = Judgment.objects.get(pk=judgment.pk)
        return _render_page(
            request,
            comparison,
            viewer,
            errors=exc.message_dict,
            status=400,
            notice="Not submitted yet: your draft is saved; fix what is marked below.",
        )
    except actions.JudgmentClosed as exc:
        messages.info(request, str(exc))
        return redirect("review:compare", public_id=comparison.public_id)
    messages.success(
        request, "Judgment submitted. Thank you — take the next comparison when ready."
    )
    return redirect("review:queue")


@require_POST
@comparison_view(start=True)
def follow_up(request: HttpRequest, comparison: Comparison, viewer: Viewer) -> HttpResponse:
    if not viewer.editable:
        raise PermissionDenied(
            "Only the annotator working on this comparison may ask for a follow-up."
        )
    try:
        from marlin.agents.actions import do_start_follow_up
    except ImportError:
        messages.error(request, "Follow-up turns are not available on this server.")
        return redirect("review:compare", public_id=comparison.public_id)
    try:
        do_start_follow_up(request.user, comparison, request.POST.get("prompt", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except Exception as exc:  # noqa: BLE001 - the agents' IllegalTransition carries a blind message
        if type(exc).__name__ != "IllegalTransition":
            raise
        messages.error(request, str(exc))
    else:
        messages.success(
            request, "Follow-up sent to both sides. The new turn appears here when both finish."
        )
    return redirect("review:compare", public_id=comparison.public_id)
