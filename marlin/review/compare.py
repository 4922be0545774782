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
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from django.db.models.functions import Length, Substr

from marlin import paths
from marlin.accounts.models import User
from marlin.agents.models import Candidate, Run, TrajectoryStep, Turn
from marlin.checks.models import CheckResult
from marlin.diffs import render as diffrender
from marlin.diffs import render_ab
from marlin.diffs.index import INDEX_VERSION, index_patch, parse_section, stub_files
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
    source: SideFiles | None = None


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
    # The patch texts are read on demand (patch_for_experts, or file sections via the index).
    # Their lengths come along so a stored index can be checked against the text it indexes.
    return (
        Candidate.objects.filter(turn__run=run, turn__number=turn)
        .defer("patch", "scrubbed_patch")
        .annotate(patch_length=Length("patch"), scrubbed_length=Length("scrubbed_patch"))
        .first()
    )


def side_patch(comparison: Comparison, side: str, turn: int, view: View = "cumulative") -> str:
    """The patch shown for a side at a turn (scrubbed when fingerprints were found)."""
    run = runs_by_side(comparison)[check_side(side)]
    candidate = candidate_at(run, turn)
    if candidate is None:
        return ""
    if view == "cumulative" or turn == 1:
        return candidate.patch_for_experts
    return _incremental(comparison, run, candidate, turn)[0]


def _incremental(
    comparison: Comparison, run: Run, candidate: Candidate, turn: int
) -> tuple[str, Path]:
    """The changes of this turn alone and the cache file they are kept in."""
    previous = candidate_at(run, turn - 1)
    before = previous.patch_for_experts if previous is not None else ""
    after = candidate.patch_for_experts
    try:
        text = incremental_patch(
            comparison.task.repository.mirror_path, comparison.task.base_commit, before, after
        )
    except GitError as exc:
        raise CompareError(
            f"The changes of turn {turn} alone could not be computed ({exc}); "
            "use the cumulative view."
        ) from None
    return text, turn_diff_path(comparison.task.base_commit, before, after)


@dataclass
class SideFiles:
    """A side's files at a turn. From a stored index (marlin.diffs.index) they start as stubs
    without hunks, enough for counts, trees and pairing; ``load`` reads and parses only the
    sections of the files asked for. Without usable sections they are parsed whole."""

    files: list[FileDiff]
    entries: list[dict[str, Any]] = field(default_factory=list)
    candidate_id: int | None = None
    column: str = "patch"
    cache_file: Path | None = None

    def load(self, indexes: Iterable[int]) -> None:
        wanted = sorted(
            {
                i
                for i in indexes
                if 0 <= i < len(self.files) and self.files[i].indexed_rows is not None
            }
        )
        if not wanted:
            return
        entries = [self.entries[i] for i in wanted]
        for i, entry, text in zip(wanted, entries, self._sections(entries), strict=True):
            try:
                self.files[i] = parse_section(text, entry)
            except DiffParseError as exc:
                raise CompareError(
                    f"The change to {entry['path']} could not be read: {exc}"
                ) from None

    def all(self) -> list[FileDiff]:
        self.load(range(len(self.files)))
        return self.files

    def _sections(self, entries: list[dict[str, Any]]) -> list[str]:
        if self.cache_file is not None:
            with self.cache_file.open("rb") as f:
                out = []
                for e in entries:
                    f.seek(e["byte_start"])
                    out.append(f.read(e["byte_end"] - e["byte_start"]).decode("utf-8", "replace"))
                return out
        # One query for all sections: SQL SUBSTR counts characters on SQLite and PostgreSQL.
        names = {
            f"section_{n}": Substr(self.column, e["start"] + 1, e["end"] - e["start"])
            for n, e in enumerate(entries)
        }
        if self.candidate_id is None:
            raise CompareError("This change has no stored text to read files from.")
        row = (
            Candidate.objects.filter(pk=self.candidate_id)
            .annotate(**names)
            .values_list(*names)
            .first()
        )
        if row is None:
            raise CompareError("The change was removed while it was being read.")
        return [str(text) for text in row]


def side_source(
    comparison: Comparison, side: str, turn: int, view: View = "cumulative"
) -> SideFiles:
    """Where a side's files come from (see SideFiles); raises CompareError for a patch that
    does not parse."""
    run = runs_by_side(comparison)[check_side(side)]
    candidate = candidate_at(run, turn)
    if candidate is None:
        return SideFiles(files=[])
    if view == "incremental" and turn > 1:
        text, path = _incremental(comparison, run, candidate, turn)
        turn_index = _turn_diff_index(path, text)
        cache_file = path if turn_index["sections"] else None
        return _from_index(side, turn_index, text, cache_file=cache_file)
    index: Any = candidate.diff_index
    # Annotated by candidate_at.
    length = getattr(candidate, "scrubbed_length" if candidate.fingerprints else "patch_length")
    if (
        not isinstance(index, dict)
        or index.get("version") != INDEX_VERSION
        or index.get("length") != length
    ):
        # Stored before indexes existed, by bulk_create, or its text replaced by an UPDATE:
        # indexed now, once, on first read.
        index = index_patch(candidate.patch_for_experts)
        Candidate.objects.filter(pk=candidate.pk).update(diff_index=index)
        candidate.diff_index = index
    column = "scrubbed_patch" if candidate.fingerprints else "patch"
    if index["sections"]:
        return SideFiles(
            files=stub_files(index),
            entries=list(index["files"]),
            candidate_id=candidate.pk,
            column=column,
        )
    return _from_index(side, index, candidate.patch_for_experts)


def _from_index(
    side: str, index: dict[str, Any], text: str, *, cache_file: Path | None = None
) -> SideFiles:
    if index["error"]:
        raise CompareError(f"The change on side {side} could not be read: {index['error']}")
    if cache_file is not None:
        return SideFiles(
            files=stub_files(index), entries=list(index["files"]), cache_file=cache_file
        )
    try:
        return SideFiles(files=list(parse_cached(text)))
    except DiffParseError as exc:
        raise CompareError(f"The change on side {side} could not be read: {exc}") from None


def side_files(
    comparison: Comparison, side: str, turn: int, view: View = "cumulative"
) -> list[FileDiff]:
    """Every file of the side, parsed."""
    return side_source(comparison, side, turn, view).all()


@lru_cache(maxsize=32)
def parse_cached(patch: str) -> list[FileDiff]:
    # For patches without usable sections: parsed whole, once per process.
    return parse_patch(patch)


def _first_screen(sizes: Iterable[tuple[int, bool]], limit: int) -> list[int]:
    """Positions a first-screen renderer draws in full, given (rows, counts toward the limit)."""
    shown, out = 0, []
    for position, (rows, counted) in enumerate(sizes):
        if shown >= limit and counted:
            break
        out.append(position)
        if counted:
            shown += rows
    return out


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
        source = side_source(comparison, letter, turn, view)
    except CompareError as exc:
        side.parse_error = str(exc)
        return side
    side.source = source
    files = source.files  # stubs until the first screen's files are loaded (_pair_view)
    side.diffs = files
    side.files = len(files)
    side.added = sum(f.added for f in files)
    side.removed = sum(f.removed for f in files)
    # The side's own tree and diff are rendered when its tab is first opened (side_tree,
    # render_side_patch): the page carries the A | B view only.
    if with_checks:
        side.checks = list(candidate.check_results.order_by("check_index"))
    return side


def _pair_view(sides: list[SideView]) -> PairView:
    pairs = _load_first_screen(pair_files(sides[0].diffs, sides[1].diffs), sides)
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


def _load_first_screen(pairs: list[FilePair], sides: list[SideView]) -> list[FilePair]:
    """Read the files of the pairs render_pairs draws in full; the rest stay stubs."""
    shown = _first_screen(((p.line_count, True) for p in pairs), diffrender.FIRST_SCREEN_LINES)
    return _loaded([pairs[i] for i in shown], pairs, [s.source for s in sides])


def _loaded(
    wanted: list[FilePair], pairs: list[FilePair], sources: list[SideFiles | None]
) -> list[FilePair]:
    """pairs with the files of ``wanted`` read from their sides' sources."""
    for side, source in enumerate(sources):
        if source is None:
            continue
        files = [p.a if side == 0 else p.b for p in wanted]
        source.load(f.index for f in files if f is not None)
    out = []
    for p in pairs:
        a = sources[0].files[p.a.index] if p.a is not None and sources[0] is not None else p.a
        b = sources[1].files[p.b.index] if p.b is not None and sources[1] is not None else p.b
        out.append(FilePair(index=p.index, path=p.path, a=a, b=b))
    return out


def side_pairs(comparison: Comparison, turn: int, view: View) -> list[FilePair]:
    files = [side_files(comparison, letter, turn, view) for letter in SIDES]
    return pair_files(files[0], files[1])


def render_pair_file(
    comparison: Comparison, turn: int, view: View, index: int, *, force: bool = False
) -> str:
    """One file of the A | B view, loaded by the page when it scrolls into view: only that
    file's sections are read."""
    sources = [side_source(comparison, letter, turn, view) for letter in SIDES]
    pairs = pair_files(sources[0].files, sources[1].files)
    if not 0 <= index < len(pairs):
        raise CompareError(f"A and B touched {len(pairs)} files at this turn; no file {index}.")
    pair = _loaded([pairs[index]], pairs, list(sources))[index]
    return render_ab.render_pair(
        pair, max_lines=None if force else diffrender.DEFAULT_MAX_LINES, force=force
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
    source = side_source(comparison, side, turn, view)
    files = source.files
    if not 0 <= index < len(files):
        raise CompareError(f"Side {side} has {len(files)} files at this turn; no file {index}.")
    source.load([index])
    return diffrender.render_file(
        files[index],
        mode=mode,
        anchor_prefix=PREFIX[check_side(side)],
        context_expand=view == "cumulative",
        force=force,
        max_lines=None if force else diffrender.DEFAULT_MAX_LINES,
    )


def side_tree(comparison: Comparison, side: str, turn: int, view: View) -> list[TreeNode]:
    """The file tree of one side (its tab's sidebar, loaded with its diff)."""
    return file_tree(side_source(comparison, check_side(side), turn, view).files)


def render_side_patch(
    comparison: Comparison, side: str, turn: int, view: View, mode: diffrender.Mode
) -> str:
    source = side_source(comparison, side, turn, view)
    files = source.files
    counted = ((f.line_count, not f.is_binary and not f.is_generated) for f in files)
    source.load(_first_screen(counted, diffrender.FIRST_SCREEN_LINES))
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
    files = side_source(comparison, side, turn, "cumulative").files  # metadata is enough
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


def turn_diff_path(base_commit: str, before: str, after: str) -> Path:
    key = hashlib.sha256("\0".join((base_commit, before, after)).encode()).hexdigest()
    return paths.data_dir() / "cache" / "turn-diffs" / f"{key}.patch"


def incremental_patch(mirror: str, base_commit: str, before: str, after: str) -> str:
    """The diff from (base + ``before``) to (base + ``after``); cached on disk with its index."""
    cache = turn_diff_path(base_commit, before, after)
    if cache.exists():
        # newline="": the text exactly as written (CRs are content), so the index matches it.
        with cache.open(encoding="utf-8", newline="") as f:
            return f.read()
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
    _write_atomically(cache, text)
    _turn_diff_index(cache, text)
    return text


def _turn_diff_index(cache: Path, text: str) -> dict[str, Any]:
    """The index of a cached turn diff, made once beside it (its byte offsets are into the
    cache file, which is written as UTF-8)."""
    path = cache.with_suffix(".index.json")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(index, dict) and index.get("version") == INDEX_VERSION:
            return index
    except (OSError, ValueError):
        pass
    index = index_patch(text)
    _write_atomically(path, json.dumps(index))
    return index


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with partial.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
    partial.replace(path)


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
