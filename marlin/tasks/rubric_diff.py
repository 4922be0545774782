"""What changed between two rubric versions, field by field, for the history page.

Plain Python on the criteria lists as stored (``RubricVersion.criteria``): criteria are matched
by key; a changed text field carries word-level segments, so a change at the end of a long
guidance shows where it is instead of as one changed line.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from marlin.tasks.rubric import validate_criteria

Op = Literal["same", "del", "ins"]
FIELDS = (
    ("name", "Name"),
    ("description", "Description"),
    ("guidance", "Guidance"),
    ("scale", "Scale"),
    ("allow_not_applicable", "Not applicable allowed"),
)
_WORDS = re.compile(r"\s+|[^\s]+")


@dataclass
class FieldChange:
    label: str
    segments: list[tuple[Op, str]]


@dataclass
class CriterionChange:
    kind: Literal["added", "removed", "changed", "moved"]
    key: str
    name: str
    fields: list[FieldChange] = field(default_factory=list)
    position: tuple[int, int] | None = None  # 1-based, old -> new, when it moved


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """``old`` to ``new`` as segments of unchanged, deleted and inserted words (with the
    whitespace between them), in reading order."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            _changed(out, "del", "".join(a[i1:i2]))
        if j2 > j1:
            _changed(out, "ins", "".join(b[j1:j2]))
    return out


def _changed(out: list[tuple[Op, str]], op: Op, text: str) -> None:
    """Append a changed segment; the space before it stays with the unchanged text, so the
    highlight starts at the word."""
    stripped = text.lstrip()
    if stripped != text and out and out[-1][0] == "same":
        out[-1] = ("same", out[-1][1] + text[: len(text) - len(stripped)])
        text = stripped
    out.append((op, text))


def criteria_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[CriterionChange]:
    """Criteria added, removed, changed (each changed field with its word diff) or moved, in
    the new version's order, removed ones last."""
    before = {c["key"]: (i, c) for i, c in enumerate(validate_criteria(old))}
    after = validate_criteria(new)
    old_order = [k for k in before if any(c["key"] == k for c in after)]
    new_order = [c["key"] for c in after if c["key"] in before]
    # The longest run of criteria that kept their order stayed; the others moved.
    blocks = difflib.SequenceMatcher(None, old_order, new_order, autojunk=False)
    stayed = {k for b in blocks.get_matching_blocks() for k in old_order[b.a : b.a + b.size]}
    changes = []
    for criterion in after:
        key = criterion["key"]
        if key not in before:
            changes.append(CriterionChange("added", key, criterion["name"]))
            continue
        _, previous = before[key]
        fields = [
            FieldChange(label, word_diff(_text(previous[name]), _text(criterion[name])))
            for name, label in FIELDS
            if previous[name] != criterion[name]
        ]
        moved = key not in stayed
        if fields or moved:
            change = CriterionChange("changed" if fields else "moved", key, criterion["name"])
            change.fields = fields
            if moved:
                change.position = (old_order.index(key) + 1, new_order.index(key) + 1)
            changes.append(change)
    keys = {c["key"] for c in after}
    changes += [
        CriterionChange("removed", key, c["name"])
        for key, (_, c) in before.items()
        if key not in keys
    ]
    return changes


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
