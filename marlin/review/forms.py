"""Forms built from a rubric version: the judgment, the review and the adjudicator's decision.

``RubricForm`` is the one builder. A form declares its fixed fields as usual and names the fields
one rated criterion (and, for judgments, one turn) adds; ``Form(data, version=...,
turn_count=...)`` builds them from the rubric version. The comparison page (autosave and submit),
the review page, the adjudication page and the JSON API all check their input with these forms,
so they accept and refuse the same input with the same messages: the API turns its JSON into the
same fields first (``draft_data``, ``review_data``).

Judgment fields: ``rating-<criterion key>`` (-3..3, or ``na``), ``overall`` (-3..3),
``rationale``, ``confidence`` (1-5), ``comments`` (JSON list of ``{side, file, line_side, line,
text}``), ``turn_note-<n>`` and ``draft_revision``.
Review fields: ``verdict``, ``reason``, ``agree-<key>`` (agree or disagree) and ``reason-<key>``.
Decision fields: ``rating-<key>``, ``overall`` and ``rationale``.

No form carries time: active time is measured by the server from heartbeats
(marlin/review/activity.py). Time fields older clients still send (``active_seconds``,
``wall_seconds``, ``timer``) are not form fields, so they are ignored.

Ratings are stored as ``{key: -3..3}`` for rated criteria and ``{key: None}`` for "not
applicable"; a criterion missing from the dict is not rated yet. The overall preference lives in
``Judgment.overall``, not in ``ratings``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from django import forms
from django.core.exceptions import ValidationError

from marlin.review.models import Comparison, Judgment, ReviewVerdict
from marlin.tasks.models import RubricVersion
from marlin.tasks.rubric import SCALE_7, rating_error, review_answer_error, scale_error

NOT_APPLICABLE = "na"
MAX_RATIONALE = 20_000
MAX_COMMENTS = 300
MAX_COMMENT_CHARS = 5_000
MAX_NOTE_CHARS = 5_000
CONFIDENCE_CHOICES = [
    ("1", "guessing"),
    ("2", "unsure"),
    ("3", "fairly sure"),
    ("4", "sure"),
    ("5", "certain"),
]
AGREEMENT_CHOICES = [("agree", "agree"), ("disagree", "disagree")]


class LineComment(TypedDict):
    side: str
    file: str
    line_side: str
    line: int
    text: str


class Draft(TypedDict):
    ratings: dict[str, int | None]
    overall: int | None
    rationale: str
    confidence: int | None
    comments: list[LineComment]
    turn_notes: dict[str, str]
    # Absent when a client does not send it (the API's older drafts): the saved ones stay.
    turn_verdicts: NotRequired[dict[str, int]]


def rating_field(key: str) -> str:
    return f"rating-{key}"


SCALE_SHORT = {-3: "A3", -2: "A2", -1: "A1", 0: "=", 1: "B1", 2: "B2", 3: "B3"}


def rating_scale() -> list[dict[str, str]]:
    """The points of the one rating control (review/_scale.html): value, words, button text."""
    return [{"value": str(v), "label": label, "short": SCALE_SHORT[v]} for v, label in SCALE_7]


def error_messages(form: forms.Form) -> list[str]:
    """Every error message of a bound form, for answers that are one line of text (the
    autosave's JSON, the API)."""
    return [str(message) for errors in form.errors.values() for message in errors]


# Fields ------------------------------------------------------------------------------------


class ScaleField(forms.Field):
    """A value on the 7-point scale, -3 (A much better) to 3 (B much better); blank is None.
    The label names the value in messages."""

    def to_python(self, value: Any) -> Any:
        text = "" if value in self.empty_values else str(value).strip()
        if not text:
            return None
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or scale_error(str(self.label), number):
            raise ValidationError(
                f"{self.label}: {text!r} is not on the 7-point scale (-3 to 3).", code="scale"
            )
        return number


class RatingField(ScaleField):
    """One criterion of the rubric: the 7-point scale, or ``na`` (cleaned to NOT_APPLICABLE)
    where the criterion allows "not applicable"."""

    def __init__(self, criterion: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(label=criterion["name"], **kwargs)
        self.criterion = criterion

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == NOT_APPLICABLE:
            problem = rating_error(self.criterion, None)
            if problem:
                raise ValidationError(problem, code="not_applicable")
            return NOT_APPLICABLE
        return super().to_python(value)


class CommentsField(forms.Field):
    """Line comments as the page keeps them: a JSON list of ``{side, file, line_side, line,
    text}``."""

    def to_python(self, value: Any) -> list[LineComment]:
        text = "" if value in self.empty_values else str(value).strip()
        if not text:
            return []
        try:
            items = json.loads(text)
        except ValueError:
            raise ValidationError(
                "The line comments could not be read (not JSON).", code="json"
            ) from None
        if not isinstance(items, list) or len(items) > MAX_COMMENTS:
            raise ValidationError(
                f"Line comments must be a list of at most {MAX_COMMENTS}.", code="comments"
            )
        return [_comment(item, n) for n, item in enumerate(items, 1)]


def _comment(item: Any, n: int) -> LineComment:
    problem = f"Line comment {n} is malformed"
    if not isinstance(item, dict):
        raise ValidationError(f"{problem}.")
    side, line_side = item.get("side"), item.get("line_side")
    text, path, line = item.get("text"), item.get("file"), item.get("line")
    if side not in ("A", "B") or line_side not in ("old", "new"):
        raise ValidationError(f"{problem}: side must be A or B and line side old or new.")
    if not isinstance(path, str) or not path or len(path) > 1000:
        raise ValidationError(f"{problem}: it needs the file's path.")
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise ValidationError(f"{problem}: the line must be a positive number.")
    if not isinstance(text, str) or len(text) > MAX_COMMENT_CHARS:
        raise ValidationError(f"{problem}: text of at most {MAX_COMMENT_CHARS} characters.")
    if "\x00" in text or "\x00" in path:
        raise ValidationError(f"{problem}: it contains a null character.")
    return LineComment(side=side, file=path, line_side=line_side, line=line, text=text)


def _text(label: str, limit: int, **kwargs: Any) -> forms.CharField:
    """Optional free text of at most ``limit`` characters, kept as typed."""
    return forms.CharField(
        required=False,
        strip=False,
        max_length=limit,
        label=label,
        error_messages={"max_length": f"{label} is too long (at most {limit} characters)."},
        **kwargs,
    )


# The builder -------------------------------------------------------------------------------


class RubricForm(forms.Form):
    """A form whose fields follow a rubric version: the fields a subclass declares, then
    ``criterion_fields`` for every rated criterion and ``turn_fields`` for turns 1 to
    ``turn_count``."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        version: RubricVersion,
        turn_count: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.version = version
        self.turn_count = turn_count
        for criterion in version.rated_criteria:
            self.fields.update(self.criterion_fields(criterion))
        for number in range(1, turn_count + 1):
            self.fields.update(self.turn_fields(number))

    def criterion_fields(self, criterion: Mapping[str, Any]) -> dict[str, forms.Field]:
        return {}

    def turn_fields(self, number: int) -> dict[str, forms.Field]:
        return {}


class RatingsForm(RubricForm):
    """A rubric form that rates every criterion (``rating-<key>``)."""

    def criterion_fields(self, criterion: Mapping[str, Any]) -> dict[str, forms.Field]:
        return {rating_field(criterion["key"]): RatingField(criterion, required=False)}

    def ratings(self) -> dict[str, int | None]:
        """Cleaned ratings: key -> -3..3, or None for not applicable; unrated keys left out."""
        ratings: dict[str, int | None] = {}
        for criterion in self.version.rated_criteria:
            value = self.cleaned_data.get(rating_field(criterion["key"]))
            if value is not None:
                ratings[criterion["key"]] = None if value == NOT_APPLICABLE else value
        return ratings

    def rating_rows(self) -> list[tuple[dict[str, Any], forms.BoundField]]:
        """Each rated criterion with its bound field, in rubric order (for templates)."""
        return [(c, self[rating_field(c["key"])]) for c in self.version.rated_criteria]


# The annotator's judgment ------------------------------------------------------------------


class JudgmentForm(RatingsForm):
    """A judgment draft: what the autosave, the submit button and the API's PUT send. Every
    field may be blank (a draft is saved as it is); what submitting needs is
    ``submission_errors``."""

    overall = ScaleField(label="The overall preference", required=False)
    rationale = _text("The rationale", MAX_RATIONALE)
    confidence = forms.TypedChoiceField(
        choices=CONFIDENCE_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        error_messages={"invalid_choice": "Confidence must be 1 to 5, not %(value)r."},
    )
    comments = CommentsField(required=False)
    draft_revision = forms.IntegerField(
        min_value=0,
        error_messages={
            key: "The form is missing its draft revision; reload the page."
            for key in ("required", "invalid", "min_value")
        },
    )

    def turn_fields(self, number: int) -> dict[str, forms.Field]:
        fields: dict[str, forms.Field] = {
            f"turn_note-{number}": _text(f"The note on turn {number}", MAX_NOTE_CHARS)
        }
        if number < self.turn_count:
            # The last turn's preference is the overall one.
            fields[f"turn_verdict-{number}"] = ScaleField(
                label=f"The preference on turn {number}", required=False
            )
        return fields

    def draft(self) -> Draft:
        data = self.cleaned_data
        notes = {
            str(n): data[f"turn_note-{n}"]
            for n in range(1, self.turn_count + 1)
            if data[f"turn_note-{n}"].strip()
        }
        verdicts = {
            str(n): data[f"turn_verdict-{n}"]
            for n in range(1, self.turn_count)
            if data.get(f"turn_verdict-{n}") is not None
        }
        return Draft(
            ratings=self.ratings(),
            overall=data["overall"],
            rationale=data["rationale"],
            confidence=data["confidence"],
            comments=data["comments"],
            turn_notes=notes,
            turn_verdicts=verdicts,
        )

    def turn_note_rows(self) -> list[tuple[int, forms.BoundField]]:
        return [(n, self[f"turn_note-{n}"]) for n in range(1, self.turn_count + 1)]

    def turn_verdict_rows(self) -> list[tuple[int, forms.BoundField]]:
        """The preference fields of the turns before the last (the last one is overall)."""
        return [(n, self[f"turn_verdict-{n}"]) for n in range(1, self.turn_count)]


def judgment_form(
    comparison: Comparison, annotator: Any, data: Mapping[str, Any] | None = None
) -> JudgmentForm:
    """The annotator's judgment form on the comparison: on their judgment's rubric version, or
    on the current one before their first save starts the judgment."""
    judgment = (
        Judgment.objects.filter(comparison=comparison, annotator_id=annotator.pk)
        .select_related("rubric_version")
        .first()
    )
    version = judgment.rubric_version if judgment else comparison.project.rubric.current_version()
    return JudgmentForm(data, version=version, turn_count=comparison.turn_count)


def draft_data(draft: Mapping[str, Any], *, revision: int) -> dict[str, str]:
    """The judgment form's fields that carry a draft: what the page's form shows, and what the
    API's JSON becomes before JudgmentForm checks it."""
    data = {
        rating_field(key): NOT_APPLICABLE if value is None else str(value)
        for key, value in draft["ratings"].items()
    }
    if draft["overall"] is not None:
        data["overall"] = str(draft["overall"])
    if draft["confidence"] is not None:
        data["confidence"] = str(draft["confidence"])
    for number, note in draft["turn_notes"].items():
        data[f"turn_note-{number}"] = note
    for number, verdict in draft.get("turn_verdicts", {}).items():
        data[f"turn_verdict-{number}"] = str(verdict)
    return data | {
        "rationale": draft["rationale"],
        "comments": json.dumps(draft["comments"]),
        "draft_revision": str(revision),
    }


def submission_errors(
    draft: Draft, version: RubricVersion, *, min_rationale: int
) -> dict[str, str]:
    """What stops this draft from being submitted: field name -> message (empty when none)."""
    errors: dict[str, str] = {}
    missing = [c["name"] for c in version.rated_criteria if c["key"] not in draft["ratings"]]
    if missing:
        errors["ratings"] = (
            f"Rate every criterion (or mark it not applicable where allowed); missing: "
            f"{', '.join(missing)}."
        )
    if draft["overall"] is None:
        errors["overall"] = "Choose an overall preference (A much better … B much better)."
    length = len(draft["rationale"].strip())
    if length < min_rationale:
        errors["rationale"] = (
            f"The rationale is too short: {length} of at least {min_rationale} characters. "
            "Name the reasons that decided your preference."
        )
    if draft["confidence"] is None:
        errors["confidence"] = "Say how confident you are (1 = guessing, 5 = certain)."
    return errors


# The reviewer's review ---------------------------------------------------------------------


class ReviewForm(RubricForm):
    """A review of a judgment, on the judgment's rubric version: agree or disagree per
    criterion (a disagreement needs its reason) and overall, or a revision request, which needs
    only the comments."""

    verdict = forms.ChoiceField(
        choices=ReviewVerdict.choices,
        error_messages={
            "required": "Choose agree, disagree or request a revision.",
            "invalid_choice": "Unknown verdict %(value)r: choose agree, disagree or request a "
            "revision.",
        },
    )
    reason = _text("The reason", MAX_RATIONALE)

    def criterion_fields(self, criterion: Mapping[str, Any]) -> dict[str, forms.Field]:
        key, name = criterion["key"], criterion["name"]
        return {
            f"agree-{key}": forms.ChoiceField(
                choices=AGREEMENT_CHOICES,
                required=False,
                label=name,
                error_messages={"invalid_choice": f"Agree or disagree on {name}."},
            ),
            f"reason-{key}": _text(f"The reason on {name}", MAX_NOTE_CHARS),
            # With a disagreement, the rating the reviewer would give (optional).
            rating_field(key): RatingField(criterion, required=False),
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        verdict, reason = data.get("verdict"), data.get("reason", "").strip()
        if verdict == ReviewVerdict.REVISION:
            if not reason:
                self.add_error(
                    "reason",
                    "Say what the annotator should change: comments are required to request a "
                    "revision.",
                )
            return data
        if verdict and not reason:
            self.add_error("reason", "A reason is required: say why you agree or disagree.")
        if verdict:
            for criterion in self.version.rated_criteria:
                self._check_criterion(data, criterion)
        return data

    def _check_criterion(self, data: dict[str, Any], criterion: Mapping[str, Any]) -> None:
        agree, why = f"agree-{criterion['key']}", f"reason-{criterion['key']}"
        if agree in self.errors or why in self.errors:
            return
        answer = data.get(agree)
        problem = review_answer_error(
            criterion, None if not answer else answer == "agree", data.get(why, "")
        )
        if problem:
            self.add_error(agree if not answer else why, problem)

    def per_criterion(self) -> dict[str, dict[str, Any]]:
        """Cleaned answers: key -> {agree, reason}, for the criteria answered."""
        answers = {}
        for criterion in self.version.rated_criteria:
            answer = self.cleaned_data.get(f"agree-{criterion['key']}")
            if answer:
                reason = self.cleaned_data.get(f"reason-{criterion['key']}", "").strip()
                entry: dict[str, Any] = {"agree": answer == "agree", "reason": reason}
                rating = self.cleaned_data.get(rating_field(criterion["key"]))
                if answer == "disagree" and rating is not None:
                    entry["rating"] = None if rating == NOT_APPLICABLE else rating
                answers[criterion["key"]] = entry
        return answers

    def criterion_rows(
        self,
    ) -> list[tuple[dict[str, Any], forms.BoundField, forms.BoundField, forms.BoundField]]:
        """Each criterion with its agree, reason and rating fields, in rubric order."""
        return [
            (c, self[f"agree-{c['key']}"], self[f"reason-{c['key']}"], self[rating_field(c["key"])])
            for c in self.version.rated_criteria
        ]


def review_data(verdict: str, reason: str, per_criterion: Mapping[str, Any]) -> dict[str, str]:
    """The review form's fields for a review sent as JSON (``per_criterion``: key -> {agree:
    bool, reason})."""
    data = {"verdict": verdict, "reason": reason}
    for key, entry in per_criterion.items():
        entry = entry if isinstance(entry, Mapping) else {"agree": entry}
        agree = entry.get("agree")
        if agree is True:
            data[f"agree-{key}"] = "agree"
        elif agree is False:
            data[f"agree-{key}"] = "disagree"
        elif agree is not None:
            data[f"agree-{key}"] = str(agree)  # refused: not a choice
        data[f"reason-{key}"] = str(entry.get("reason") or "")
        if "rating" in entry:
            rating = entry["rating"]
            data[rating_field(key)] = NOT_APPLICABLE if rating is None else str(rating)
    return data


# The adjudicator's decision ----------------------------------------------------------------


class DecisionForm(RatingsForm):
    """The final decision on a disputed comparison, on the current rubric version: every
    criterion, the overall preference and a rationale of the project's minimum length."""

    overall = ScaleField(
        label="The overall decision",
        error_messages={"required": "Choose the overall decision (A much better … B much better)."},
    )
    rationale = _text("The rationale", MAX_RATIONALE)

    def __init__(self, *args: Any, min_rationale: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_rationale = min_rationale

    def criterion_fields(self, criterion: Mapping[str, Any]) -> dict[str, forms.Field]:
        name = criterion["name"]
        missing = (
            f"Decide {name} (or mark it not applicable)."
            if criterion.get("allow_not_applicable", True)
            else f"Decide {name}."
        )
        field = RatingField(criterion, required=True, error_messages={"required": missing})
        return {rating_field(criterion["key"]): field}

    def clean_rationale(self) -> str:
        rationale = self.cleaned_data["rationale"].strip()
        if len(rationale) < self.min_rationale:
            raise ValidationError(
                f"The rationale is too short: {len(rationale)} of at least {self.min_rationale} "
                "characters."
            )
        return rationale


# Plain forms of the workspace and the pipeline ---------------------------------------------


class ReasonForm(forms.Form):
    """A reason given with an action (giving work back, voiding, re-review); the action says
    when it is required."""

    reason = forms.CharField(
        required=False,
        max_length=MAX_NOTE_CHARS,
        error_messages={
            "max_length": f"The reason is too long (at most {MAX_NOTE_CHARS} characters)."
        },
    )


class FollowUpForm(forms.Form):
    """The follow-up prompt both agents get; the action refuses an empty one."""

    prompt = forms.CharField(
        required=False,
        max_length=MAX_RATIONALE,
        error_messages={
            "max_length": f"The follow-up prompt is too long (at most {MAX_RATIONALE} characters)."
        },
    )
