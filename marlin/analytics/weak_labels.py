"""Checks as weak labels: labelling-function votes combined by a Dawid-Skene label model.

Plain numpy. Each comparison's check results give votes from labelling functions (e.g. "hidden
tests: one side resolves and the other not"); a vote is ABSTAIN, FIRST or SECOND. The label
model is Dawid and Skene's (1979): the expert decision y (FIRST, SECOND or TIE) has a prior, and
each labelling function's vote depends on y alone through its own confusion matrix (abstaining
is one of its outputs, so how often a function fires for each outcome is learnt too). It is
fitted by EM on the project's comparisons: the decided ones enter with their decision fixed (a
supervised M-step), the undecided ones with their posterior. The sides are shown in random
order, so the model is made symmetric by fitting every comparison twice, once with the sides
swapped. The weak label is for triage and for reviewers, never a verdict, and never shown to an
annotator before they judge. Methods and references: docs/statistics.md ("Checks as weak labels").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Votes of labelling functions.
ABSTAIN, VOTE_FIRST, VOTE_SECOND = 0, 1, 2
# Decisions (classes of the label model); UNKNOWN marks an undecided comparison.
FIRST, SECOND, TIE, UNKNOWN = 0, 1, 2, -1
CLASSES = ("first", "second", "tie")
SMOOTHING = 1.0  # add-one counts in every cell: no probability of exactly 0 or 1
MAX_ITER = 100
TOL = 1e-6


class LabelModelError(ValueError):
    """Votes or decisions that cannot be fitted; the message says what to change."""


@dataclass(frozen=True)
class LabelModel:
    prior: FloatArray  # (3,) P(decision)
    confusion: FloatArray  # (m, 3, 3): P(vote v | decision y) per labelling function
    iterations: int


def _swap_votes(votes: IntArray) -> IntArray:
    out = votes.copy()
    out[votes == VOTE_FIRST] = VOTE_SECOND
    out[votes == VOTE_SECOND] = VOTE_FIRST
    return out


def _swap_labels(labels: IntArray) -> IntArray:
    out = labels.copy()
    out[labels == FIRST] = SECOND
    out[labels == SECOND] = FIRST
    return out


def _check(votes: npt.ArrayLike, labels: npt.ArrayLike | None) -> tuple[IntArray, IntArray]:
    v = np.asarray(votes, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] == 0:
        raise LabelModelError("votes must be a (comparisons x labelling functions) array")
    if np.any((v < ABSTAIN) | (v > VOTE_SECOND)):
        raise LabelModelError("a vote must be 0 (abstain), 1 (first side) or 2 (second side)")
    if labels is None:
        y = np.full(v.shape[0], UNKNOWN, dtype=np.int64)
    else:
        y = np.asarray(labels, dtype=np.int64)
        if y.shape != (v.shape[0],):
            raise LabelModelError("labels must have one entry per comparison")
        if np.any((y < UNKNOWN) | (y > TIE)):
            raise LabelModelError("a label must be -1 (undecided), 0 (first), 1 (second), 2 (tie)")
    return v, y


def _posterior(model: LabelModel, votes: IntArray) -> FloatArray:
    # log P(y) + sum_f log P(vote_f | y), per comparison and class.
    log = np.log(model.prior)[None, :].repeat(votes.shape[0], axis=0)
    for f in range(votes.shape[1]):
        log += np.log(model.confusion[f][:, votes[:, f]]).T
    log -= log.max(axis=1, keepdims=True)
    p = np.exp(log)
    out: FloatArray = p / p.sum(axis=1, keepdims=True)
    return out


def _m_step(votes: IntArray, resp: FloatArray) -> tuple[FloatArray, FloatArray]:
    prior = resp.sum(axis=0) + SMOOTHING
    prior /= prior.sum()
    m = votes.shape[1]
    confusion = np.empty((m, 3, 3))
    onehot = np.eye(3)
    for f in range(m):
        counts = resp.T @ onehot[votes[:, f]] + SMOOTHING  # (class, vote)
        confusion[f] = counts / counts.sum(axis=1, keepdims=True)
    return prior, confusion


def fit(votes: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> LabelModel:
    """Fit the label model; ``labels`` holds decisions (UNKNOWN where undecided)."""
    v, y = _check(votes, labels)
    v = np.concatenate([v, _swap_votes(v)])
    y = np.concatenate([y, _swap_labels(y)])
    known = y != UNKNOWN
    resp = np.full((len(y), 3), 1.0 / 3)
    resp[known] = np.eye(3)[y[known]]
    if known.any():
        prior, confusion = _m_step(v[known], resp[known])
    else:  # start from "each function is right more often than not"
        prior = np.full(3, 1.0 / 3)
        confusion = np.tile(
            np.array([[0.4, 0.5, 0.1], [0.4, 0.1, 0.5], [0.8, 0.1, 0.1]]), (v.shape[1], 1, 1)
        )
    model = LabelModel(prior, confusion, 0)
    for it in range(1, MAX_ITER + 1):
        if known.all():
            return LabelModel(prior, confusion, it)
        resp[~known] = _posterior(model, v[~known])
        prior, confusion = _m_step(v, resp)
        change = float(np.max(np.abs(confusion - model.confusion)))
        model = LabelModel(prior, confusion, it)
        if change < TOL:
            break
    return model


def predict_proba(model: LabelModel, votes: npt.ArrayLike) -> FloatArray:
    """P(decision = first, second, tie) per comparison given its votes."""
    v, _ = _check(votes, None)
    if v.shape[1] != model.confusion.shape[0]:
        raise LabelModelError(
            f"the model has {model.confusion.shape[0]} labelling functions; votes have {v.shape[1]}"
        )
    return _posterior(model, v)


def decisive(votes: npt.ArrayLike) -> BoolArray:
    """Comparisons where at least one labelling function voted."""
    v = np.asarray(votes, dtype=np.int64)
    out: BoolArray = np.any(v != ABSTAIN, axis=1)
    return out


def triage(proba: FloatArray, votes: npt.ArrayLike, threshold: float) -> BoolArray:
    """Comparisons that may go to a single annotator without review: the checks voted and the
    label model puts at least ``threshold`` on one side winning (never on a tie)."""
    if not 0.5 < threshold <= 1.0:
        raise LabelModelError(f"the triage threshold must lie in (0.5, 1]; got {threshold}")
    side = np.max(proba[:, :2], axis=1)
    out: BoolArray = decisive(votes) & (side >= threshold)
    return out


@dataclass(frozen=True)
class Report:
    """How well the weak label predicts the expert decision, on held-out folds."""

    decided: int  # decided comparisons used
    coverage: float  # share where at least one labelling function voted
    accuracy: float  # share of covered comparisons whose most likely label is the decision
    brier: float  # mean squared error of the probabilities (3 classes), covered comparisons
    calibration_error: float  # expected calibration error of the top label, 10 bins
    bins: list[tuple[float, float, int]]  # (mean confidence, accuracy, count) per non-empty bin
    triage_share: float  # share that the threshold would route to one annotator
    triage_accuracy: float  # accuracy of the weak label on those (NaN when none)


def evaluate(
    votes: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    folds: int = 5,
    threshold: float = 0.9,
    seed: int = 0,
) -> Report:
    """Cross-validated report: each decided comparison is predicted by a model fitted without it."""
    v, y = _check(votes, labels)
    decided = np.flatnonzero(y != UNKNOWN)
    if decided.size < folds:
        raise LabelModelError(f"need at least {folds} decided comparisons; got {decided.size}")
    rng = np.random.default_rng(seed)
    fold = rng.permutation(decided.size) % folds
    proba = np.empty((decided.size, 3))
    for f in range(folds):
        held = decided[fold == f]
        train = y.copy()
        train[held] = UNKNOWN
        proba[fold == f] = predict_proba(fit(v, train), v[held])
    truth = y[decided]
    covered = decisive(v[decided])
    top = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    hit = top == truth
    n_cov = int(covered.sum())
    brier = (
        float(np.mean(np.sum((proba - np.eye(3)[truth]) ** 2, axis=1)[covered]))
        if n_cov
        else float("nan")
    )
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.digitize(conf, edges) - 1, 0, 9)
    bins: list[tuple[float, float, int]] = []
    ece = 0.0
    for b in range(10):
        sel = (which == b) & covered
        if sel.any():
            bins.append((float(conf[sel].mean()), float(hit[sel].mean()), int(sel.sum())))
            ece += sel.sum() / max(n_cov, 1) * abs(conf[sel].mean() - hit[sel].mean())
    routed = triage(proba, v[decided], threshold)
    return Report(
        decided=int(decided.size),
        coverage=n_cov / decided.size,
        accuracy=float(hit[covered].mean()) if n_cov else float("nan"),
        brier=brier,
        calibration_error=float(ece) if n_cov else float("nan"),
        bins=bins,
        triage_share=float(routed.mean()),
        triage_accuracy=float(hit[routed].mean()) if routed.any() else float("nan"),
    )
