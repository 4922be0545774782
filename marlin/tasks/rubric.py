"""The shape of a rubric version's criteria (validated JSON) and the default rubric."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, field_validator

# The 7-point scale: negative prefers A, positive prefers B.
SCALE_7 = [
    (-3, "A much better"),
    (-2, "A better"),
    (-1, "A slightly better"),
    (0, "Tie"),
    (1, "B slightly better"),
    (2, "B better"),
    (3, "B much better"),
]
SCALE_VALUES = [value for value, _ in SCALE_7]
OVERALL_KEY = "overall"


def scale_error(label: str, value: object) -> str | None:
    """Why `value` is not on the 7-point scale (None when it is). `label` names it."""
    if isinstance(value, int) and not isinstance(value, bool) and value in SCALE_VALUES:
        return None
    return f"{label}: {value!r} is not on the 7-point scale (-3 to 3)."


def rating_error(criterion: Mapping[str, Any], value: object) -> str | None:
    """Why `value` is not a rating of `criterion` (None when it is): a value on the scale, or
    None for "not applicable" where the criterion allows it. The pages' forms, the API and the
    actions all judge a rating with this."""
    if value is None:
        if criterion.get("allow_not_applicable", True):
            return None
        return f"{criterion['name']} cannot be rated 'not applicable'."
    return scale_error(str(criterion["name"]), value)


def review_answer_error(
    criterion: Mapping[str, Any], agree: bool | None, reason: str
) -> str | None:
    """Why a reviewer's answer on one criterion is incomplete (None when it is complete): agree
    or disagree, and a reason with a disagreement."""
    if agree is None:
        return f"Agree or disagree on {criterion['name']}."
    if not agree and not reason.strip():
        return f"Say why you disagree on {criterion['name']}."
    return None


class Criterion(BaseModel):
    key: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    # One line under the name on the judgment form; the guidance is the longer how-to.
    description: str = Field(default="", max_length=300)
    guidance: str = Field(min_length=1, max_length=5000)
    scale: str = "7-point"
    allow_not_applicable: bool = True

    @field_validator("key")
    @classmethod
    def _key_is_a_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(
                "use lower-case letters, digits and underscores, starting with a letter"
            )
        return value

    @field_validator("scale")
    @classmethod
    def _known_scale(cls, value: str) -> str:
        if value != "7-point":
            raise ValueError("only the 7-point scale is supported")
        return value


class CriteriaSet(BaseModel):
    criteria: list[Criterion]

    @field_validator("criteria")
    @classmethod
    def _unique_keys_and_overall(cls, value: list[Criterion]) -> list[Criterion]:
        keys = [criterion.key for criterion in value]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"criterion keys must be unique; repeated: {', '.join(duplicates)}")
        if OVERALL_KEY not in keys:
            raise ValueError("a rubric needs an 'overall' criterion for the overall preference")
        return value


def validate_criteria(raw: list[dict]) -> list[dict]:
    """Validate criteria JSON and return it normalised (raises pydantic.ValidationError)."""
    return [criterion.model_dump() for criterion in CriteriaSet(criteria=raw).criteria]


DEFAULT_CRITERIA: list[dict] = [
    {
        "key": "correctness",
        "name": "Correctness",
        "guidance": (
            "Does the change do what the task asks, completely, for every input the task implies? "
            "Trace the main path and at least one edge case (empty input, boundaries, unicode, "
            "concurrency if relevant). Check failing or missing tests, and whether the change "
            "breaks existing behaviour callers rely on. A change that only appears to work "
            "(special-casing the test, swallowing errors) is incorrect. Prefer the side whose "
            "behaviour you would merge without having to fix it first."
        ),
    },
    {
        "key": "security",
        "name": "Security",
        "guidance": (
            "Does the change introduce or remove risk? Look for injection (shell, SQL, path "
            "traversal, template), unsafe deserialisation, secrets in code or logs, weakened "
            "authentication or permission checks, unbounded resource use, and new dependencies of "
            "doubtful origin. Rate 'not applicable' only when neither side touches anything "
            "security-relevant; when both are equally safe, rate a tie."
        ),
    },
    {
        "key": "reliability",
        "name": "Reliability",
        "guidance": (
            "How does the code behave when things go wrong? Consider error handling that reports "
            "rather than hides failures, resource cleanup (files, processes, connections), "
            "timeouts and retries, idempotence, and behaviour under load or partial failure. "
            "Tests that cover failure paths count in favour."
        ),
    },
    {
        "key": "maintainability",
        "name": "Maintainability",
        "guidance": (
            "Would a maintainer of this repository be glad to own this code? Judge fit with the "
            "project's existing style and structure, naming, size of the change relative to the "
            "problem (no needless rewrites or dead code), duplication, comments that explain why, "
            "and tests that are readable and meaningful. Formatting alone rarely decides this."
        ),
    },
    {
        "key": OVERALL_KEY,
        "name": "Overall preference",
        "guidance": (
            "Which change would you rather merge, all things considered? Weigh correctness first: "
            "a correct, plain change beats an elegant broken one. Use 'tie' only when you would be "
            "equally happy with either; use the strong ends of the scale when one side is clearly "
            "unacceptable or clearly superior. Your rationale should name the deciding reasons."
        ),
        "allow_not_applicable": False,
    },
]
