"""What the blind comparison page shows: both sides' diffs, trees, trajectories and checks.

``comparison_context(comparison, user, *, turn=None, view="cumulative", mode="split") -> dict``
is what ``review/_comparison_body.html`` renders; reviewers and adjudicators include the same
template with the same context, so they see exactly what the annotator saw. Everything in it is
keyed by the side letter ("A", "B"); no run, turn, candidate or agent id reaches the template
except inside the candidate object handed to the checks include (which must not print ids).

Diff views per turn: ``cumulative`` is the candidate's patch against the task's base commit;
``incremental`` is what changed between turn N-1 and turn N, computed by applying both patches
to the base in a throwaway index with a throwaway object store (the mirror is never written) and
cached on disk under ``data_dir()/cache/turn-diffs``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from marlin import paths
from marlin.accounts.models import User
from marlin.agents.models import Candidate, Run, TrajectoryStep, Turn
from marlin.checks.models import CheckResult
from marlin.diffs import render as diffrender
from marlin.diffs import render_ab
from marlin.diffs.pair import FilePair, pair_files, pair_tree
from marlin.diffs.parse import DiffParseError, FileDiff, TreeNode, file_tree, parse_patch
from marlin.review import blinding
from marlin.review.models import Comparison, Judgment, JudgmentStatus
from marlin.sandbox.gitutil import GitError, run_git, validate_ref

SIDES = ("A", "B")
PREFIX = {"A": "a", "B": "b"}
View = Literal["cumulative", "incremental"]
MAX_BASE_FILE_BYTES = 5_000_000
# Keys of a trajectory step shown to experts. Everything else (raw provider messages, tool call
# ids, model names in response metadata) could identify the agent and is never rendered.
_STEP_TEXT_KEYS = ("text", "content", "message", "command", "output", "stdout", "stderr")


class CompareError(ValueError):
    """A request for a piece of the page that does not exist (bad side, turn, file, lines)."""


@dataclass
class StepView:
    number: int
    kind: str
    texts: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    scrubbed: bool = False


@dataclass
class SideView:
    letter: str
    prefix: str
    ready: bool
    status: str
    tree: list[TreeNode] = field(default_factory=list)
    files: int = 0
    added: int = 0
    removed: int = 0
    flagged: bool = False
    parse_error: str = ""
    candidate: Candidate | None = None
    checks: list[CheckResult] = field(default_factory=list)
    diffs: list[FileDiff] = field(default_factory=list)


@dataclass
class PairView:
    """The A | B view: every file either side touched, A's change next to B's."""

    html: str
    tree: list[TreeNode]
    count: int
    both: int
    only_a: int
    only_b: int
    errors: list[str]


def runs_by_side(comparison: Comparison) -> dict[str, Run]:
    return {"A": comparison.run_a, "B": comparison.run_b}


def check_side(side: str) -> str:
    side = side.upper()
    if side not in SIDES:
        raise CompareError(f"Side must be A or B, not {side!r}.")
    return side


def check_turn(comparison: Comparison, turn: Any) -> int:
    if turn in (None, ""):
        return comparison.turn_count
    try:
        number = int(turn)
    except (TypeError, ValueError):
        raise CompareError(f"Turn must be a number, not {turn!r}.") from None
    if not 1 <= number <= comparison.turn_count:
        raise CompareError(f"This comparison has turns 1 to {comparison.turn_count}.")
    return number


def candidate_at(run: Run, turn: int) -> Candidate | None:
    return Candidate.objects.filter(turn__run=run, turn__number=turn).first()


def side_patch(comparison: Comparison, side: str, turn: int, view: View = "cumulative") -> str:
    """The patch shown for a side at a turn (scrubbed when fingerprints were found)."""
    run = runs_by_side(comparison)[check_side(side)]
    candidate = candidate_at(run, turn)
    if candidate is None:
        return ""
    if view == "cumulative" or turn == 1:
        return candidate.patch_for_experts
    previous = candidate_at(run, turn - 1)
    before = previous.patch_for_experts if previous is not None else ""
    try:
        return incremental_patch(
            comparison.task.repository.mirror_path,
            comparison.task.base_commit,
            before,
            candidate.patch_for_experts,
        )
    except GitError as exc:
        raise CompareError(
            f"The changes of turn {turn} alone could not be computed ({exc}); "
            "use the cumulative view."
        ) from None


def side_files(
    comparison: Comparison, side: str, turn: int, view: View = "cumulative"
) -> list[FileDiff]:
    try:
        return parse_cached(side_patch(comparison, side, turn, view))
    except DiffParseError as exc:
        raise CompareError(f"The change on side {side} could not be read: {exc}") from None


@lru_cache(maxsize=32)
def parse_cached(patch: str) -> list[FileDiff]:
    # Parsing a 20,000-line patch costs tens of milliseconds; every lazy file load re-reads it.
    return parse_patch(patch)


def comparison_context(
    comparison: Comparison,
    user: User,
    *,
    turn: int | None = None,
    view: View = "cumulative",
    mode: diffrender.Mode = "split",
) -> dict[str, Any]:
    """Everything ``review/_comparison_body.html`` needs, blind."""
    turn = check_turn(comparison, turn)
    view = "incremental" if view == "incremental" and turn > 1 else "cumulative"
    checks_shown = checks_visible(comparison, user)
    sides = [
        _side_view(comparison, letter, turn, view, mode, with_checks=checks_shown)
        for letter in SIDES
    ]
    prompts = list(
        Turn.objects.filter(run_id=comparison.run_a_id, number__lte=comparison.turn_count)
        .order_by("number")
        .values_list("number", "prompt")
    )
    return {
        "ab": _pair_view(sides),
        "ab_side": {"prefix": "ab", "letter": "AB"},
        "comparison": comparison,
        "public_id": comparison.public_id,
        "task_title": comparison.task.title,
        "task_prompt": comparison.task.prompt,
        "turn": turn,
        "turns": list(range(1, comparison.turn_count + 1)),
        "turn_prompts": [(n, p) for n, p in prompts if n > 1],
        "view": view,
        "mode": mode,
        "sides": sides,
        "checks_shown": checks_shown,
        "revealed": blinding.revealed_agents(user, comparison),
    }


def checks_visible(comparison: Comparison, user: User) -> bool:
    """Checks are hidden from an annotator until they drafted a judgment, when the project says."""
    if not comparison.project.hide_checks_until_drafted:
        return True
    if not user.has_role("annotator") or user.has_role("admin", "reviewer", "adjudicator"):
        return True
    judgment = Judgment.objects.filter(comparison=comparison, annotator=user).first()
    if judgment is None:
        return False
    return (
        judgment.status != JudgmentStatus.DRAFT
        or bool(judgment.ratings)
        or (judgment.overall is not None)
    )


def _side_view(
    comparison: Comparison,
    letter: str,
    turn: int,
    view: View,
    mode: diffrender.Mode,
    *,
    with_checks: bool,
) -> SideView:
    run = runs_by_side(comparison)[letter]
    turn_row = Turn.objects.filter(run=run, number=turn).first()
    candidate = candidate_at(run, turn)
    status = turn_row.status if turn_row is not None else "missing"
    side = SideView(
        letter=letter, prefix=PREFIX[letter], ready=candidate is not None, status=status
    )
    if candidate is None:
        return side
    side.candidate = candidate
    side.flagged = candidate.is_flagged
    try:
        files = side_files(comparison, letter, turn, view)
    except CompareError as exc:
        side.parse_error = str(exc)
        return side
    side.diffs = files
    side.files = len(files)
    side.added = sum(f.added for f in files)
    side.removed = sum(f.removed for f in files)
    side.tree = file_tree(files)
    # The side's own diff is rendered when its tab is first opened (render_side_patch): the
    # page carries the A | B view only.
    if with_checks:
        side.checks = list(candidate.check_results.order_by("check_index"))
    return side


def _pair_view(sides: list[SideView]) -> PairView:
    pairs = pair_files(sides[0].diffs, sides[1].diffs)
    errors = [side.parse_error for side in sides if side.parse_error]
    errors += [
        f"Side {side.letter} has no change for this turn yet ({side.status})."
        for side in sides
        if not side.ready
    ]
    return PairView(
        html=render_ab.render_pairs(pairs),
        tree=pair_tree(pairs),
        count=len(pairs),
        both=sum(p.touched == "both" for p in pairs),
        only_a=sum(p.touched == "A" for p in pairs),
        only_b=sum(p.touched == "B" for p in pairs),
        errors=errors,
    )


def side_pairs(comparison: Comparison, turn: int, view: View) -> list[FilePair]:
    files = [side_files(comparison, letter, turn, view) for letter in SIDES]
    return pair_files(files[0], files[1])


def render_pair_file(
    comparison: Comparison, turn: int, view: View, index: int, *, force: bool = False
) -> str:
    """One file of the A | B view, loaded by the page when it scrolls into view."""
    pairs = side_pairs(comparison, turn, view)
    if not 0 <= index < len(pairs):
        raise CompareError(f"A and B touched {len(pairs)} files at this turn; no file {index}.")
    return render_ab.render_pair(
        pairs[index], max_lines=None if force else diffrender.DEFAULT_MAX_LINES, force=force
    )


def render_side_file(
    comparison: Comparison,
    side: str,
    turn: int,
    view: View,
    index: int,
    mode: diffrender.Mode,
    *,
    force: bool = False,
) -> str:
    files = side_files(comparison, side, turn, view)
    if not 0 <= index < len(files):
        raise CompareError(f"Side {side} has {len(files)} files at this turn; no file {index}.")
    return diffrender.render_file(
        files[index],
        mode=mode,
        anchor_prefix=PREFIX[check_side(side)],
        context_expand=view == "cumulative",
        force=force,
        max_lines=None if force else diffrender.DEFAULT_MAX_LINES,
    )


def render_side_patch(
    comparison: Comparison, side: str, turn: int, view: View, mode: diffrender.Mode
) -> str:
    files = side_files(comparison, side, turn, view)
    return diffrender.render_patch(
        files,
        mode=mode,
        anchor_prefix=PREFIX[check_side(side)],
        context_expand=view == "cumulative",
    )


def context_rows(
    comparison: Comparison,
    side: str,
    turn: int,
    index: int,
    start: int,
    end: int | None,
    new_start: int | None,
    mode: diffrender.Mode,
) -> str:
    """Base-file lines start..end of a file the side changed, as diff rows."""
    files = side_files(comparison, side, turn, "cumulative")
    if not 0 <= index < len(files):
        raise CompareError(f"Side {side} has no file {index} at this turn.")
    file = files[index]
    if file.status == "added" or file.is_binary:
        raise CompareError("This file has no base version to show lines from.")
    path = file.old_path or file.path
    lines = base_file_lines(
        comparison.task.repository.mirror_path, comparison.task.base_commit, path
    )
    last = len(lines) if end is None else end
    if start < 1 or last < start:
        return ""
    return diffrender.render_context_lines(
        lines,
        start,
        last,
        language=file.language,
        anchor_prefix=PREFIX[check_side(side)],
        file_index=index,
        mode=mode,
        new_start=new_start,
    )


def base_file_lines(mirror: str, commit: str, path: str) -> list[str]:
    """The file at ``commit`` from the bare mirror, as lines (``git show commit:path``)."""
    if not mirror:
        raise CompareError("The repository has no mirror to read the base file from.")
    if path.startswith("-") or ":" in path[:1]:
        raise CompareError("That path cannot be read.")
    if path.startswith("/") or "\0" in path or any(p in ("..", ".git") for p in path.split("/")):
        raise CompareError("That path cannot be read.")
    try:
        blob = run_git(["--git-dir", mirror, "show", f"{validate_ref(commit)}:{path}"], timeout=20)
    except GitError as exc:
        raise CompareError(f"The base version of {path} could not be read: {exc}") from None
    if len(blob) > MAX_BASE_FILE_BYTES:
        raise CompareError("The base file is too large to show context from.")
    return blob.decode("utf-8", errors="replace").splitlines()


def incremental_patch(mirror: str, base_commit: str, before: str, after: str) -> str:
    """The diff from (base + ``before``) to (base + ``after``); cached on disk."""
    key = hashlib.sha256("\0".join((base_commit, before, after)).encode()).hexdigest()
    cache = paths.data_dir() / "cache" / "turn-diffs" / f"{key}.patch"
    if cache.exists():
        return cache.read_text()
    with tempfile.TemporaryDirectory(prefix="marlin-turndiff-") as tmp:
        objects = Path(tmp) / "objects"
        objects.mkdir()
        env = {
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_OBJECT_DIRECTORY": str(objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(Path(mirror) / "objects"),
        }
        old_tree = _tree_with(mirror, base_commit, before, env)
        new_tree = _tree_with(mirror, base_commit, after, env)
        out = run_git(
            [
                "--git-dir",
                mirror,
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                "--binary",
                "-M",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                old_tree,
                new_tree,
            ],
            env=env,
            isolated=True,
        )
    text = out.decode("utf-8", errors="replace")
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".tmp")
    partial.write_text(text)
    partial.replace(cache)
    return text


def _tree_with(mirror: str, base_commit: str, patch: str, env: dict[str, str]) -> str:
    run_git(
        ["--git-dir", mirror, "read-tree", f"{validate_ref(base_commit)}^{{tree}}"],
        env=env,
        isolated=True,
    )
    if patch.strip():
        data = (patch if patch.endswith("\n") else patch + "\n").encode("utf-8", "surrogateescape")
        run_git(
            ["--git-dir", mirror, "apply", "--cached", "--binary", "--whitespace=nowarn", "-"],
            env=env,
            stdin=data,
            isolated=True,
        )
    return run_git(["--git-dir", mirror, "write-tree"], env=env, isolated=True).decode().strip()


def trajectory(comparison: Comparison, side: str, turn: int) -> list[StepView]:
    """The side's steps at a turn, scrubbed where fingerprints were found."""
    run = runs_by_side(comparison)[check_side(side)]
    steps = TrajectoryStep.objects.filter(turn__run=run, turn__number=turn).order_by("index")
    return [_step_view(n, step) for n, step in enumerate(steps, 1)]


def _step_view(number: int, step: TrajectoryStep) -> StepView:
    scrubbed = step.scrubbed_content is not None
    content = step.scrubbed_content if scrubbed else step.content
    view = StepView(number=number, kind=str(step.kind)[:20], scrubbed=scrubbed)
    if not isinstance(content, dict):
        view.texts.append(("text", str(content)))
        return view
    for key in _STEP_TEXT_KEYS:
        value = content.get(key)
        if isinstance(value, str) and value.strip():
            view.texts.append((key, value))
    for call in content.get("tool_calls") or []:
        if isinstance(call, dict):
            arguments = call.get("arguments")
            shown = arguments if isinstance(arguments, str) else _json(arguments)
            view.calls.append((str(call.get("name", "tool")), shown))
    view.outputs = [str(o) for o in content.get("tool_outputs") or []]
    return view


def followup_status(comparison: Comparison) -> dict[str, Any]:
    """Per side, the state of the newest turn, without anything that identifies a run."""
    pending_turn = comparison.turn_count
    states: dict[str, str] = {}
    for letter, run in runs_by_side(comparison).items():
        last = Turn.objects.filter(run=run).order_by("-number").first()
        if last is not None and last.number > pending_turn:
            pending_turn = last.number
        states[letter] = last.status if last is not None else "missing"
    in_progress = pending_turn > comparison.turn_count
    return {
        "in_progress": in_progress,
        "turn": pending_turn,
        "states": [(letter, states[letter]) for letter in SIDES],
        "failed": any(s == "failed" for s in states.values()),
        "ready": not in_progress and comparison.turn_count > 1,
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
