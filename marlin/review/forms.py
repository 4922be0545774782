"""Reading a judgment draft from the comparison page's form (the autosave and the final submit
post the same fields), and checking a draft is complete enough to submit.

Fields: ``rating-<criterion key>`` (-3..3, or ``na``), ``overall`` (-3..3), ``rationale``,
``confidence`` (1-5), ``comments`` (JSON list of ``{side, file, line_side, line, text}``),
``turn_note-<n>``, ``active_seconds``, ``wall_seconds`` and ``draft_revision``.

Ratings are stored as ``{key: -3..3}`` for rated criteria and ``{key: None}`` for "not
applicable"; a criterion missing from the dict is not rated yet. The overall preference lives in
``Judgment.overall``, not in ``ratings``.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from django.core.exceptions import ValidationError
from django.http import QueryDict

from marlin.tasks.models import RubricVersion
from marlin.tasks.rubric import SCALE_VALUES

NOT_APPLICABLE = "na"
MAX_RATIONALE = 20_000
MAX_COMMENTS = 300
MAX_COMMENT_CHARS = 5_000
MAX_NOTE_CHARS = 5_000
MAX_SECONDS = 7 * 24 * 3600


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
    active_seconds: int
    wall_seconds: int


def draft_from_post(data: QueryDict, version: RubricVersion, *, turn_count: int) -> Draft:
    """Turn posted fields into a draft; raise ValidationError naming any malformed field."""
    ratings: dict[str, int | None] = {}
    for criterion in version.rated_criteria:
        raw = data.get(f"rating-{criterion['key']}", "").strip()
        if not raw:
            continue
        if raw == NOT_APPLICABLE:
            if not criterion.get("allow_not_applicable", True):
                raise ValidationError(f"{criterion['name']} cannot be rated 'not applicable'.")
            ratings[criterion["key"]] = None
        else:
            ratings[criterion["key"]] = _scale_value(raw, criterion["name"])
    overall_raw = data.get("overall", "").strip()
    overall = _scale_value(overall_raw, "The overall preference") if overall_raw else None
    rationale = data.get("rationale", "")
    if len(rationale) > MAX_RATIONALE:
        raise ValidationError(f"The rationale is too long (at most {MAX_RATIONALE} characters).")
    return Draft(
        ratings=ratings,
        overall=overall,
        rationale=rationale,
        confidence=_confidence(data.get("confidence", "").strip()),
        comments=_comments(data.get("comments", "").strip()),
        turn_notes=_turn_notes(data, turn_count),
        active_seconds=_seconds(data.get("active_seconds", "")),
        wall_seconds=_seconds(data.get("wall_seconds", "")),
    )


def revision_from_post(data: QueryDict) -> int:
    try:
        return int(data.get("draft_revision", ""))
    except ValueError:
        raise ValidationError("The form is missing its draft revision; reload the page.") from None


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


def _scale_value(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value not in SCALE_VALUES:
        raise ValidationError(f"{name}: {raw!r} is not on the 7-point scale (-3 to 3).")
    return value


def _confidence(raw: str) -> int | None:
    if not raw:
        return None
    if raw not in {"1", "2", "3", "4", "5"}:
        raise ValidationError(f"Confidence must be 1 to 5, not {raw!r}.")
    return int(raw)


def _seconds(raw: str) -> int:
    try:
        value = int(float(raw or 0))
    except ValueError:
        raise ValidationError(f"Time must be a number of seconds, not {raw!r}.") from None
    return max(0, min(value, MAX_SECONDS))


def _comments(raw: str) -> list[LineComment]:
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        raise ValidationError("The line comments could not be read (not JSON).") from None
    if not isinstance(items, list) or len(items) > MAX_COMMENTS:
        raise ValidationError(f"Line comments must be a list of at most {MAX_COMMENTS}.")
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
    return LineComment(side=side, file=path, line_side=line_side, line=line, text=text)


def _turn_notes(data: QueryDict, turn_count: int) -> dict[str, str]:
    notes: dict[str, str] = {}
    for number in range(1, turn_count + 1):
        text = data.get(f"turn_note-{number}", "")
        if len(text) > MAX_NOTE_CHARS:
            raise ValidationError(f"The note on turn {number} is too long.")
        if text.strip():
            notes[str(number)] = text
    return notes
