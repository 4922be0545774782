"""The review pipeline as a state machine. Annotators, reviewers, adjudicators, an admin and an
outsider take the actions the application offers (take work from the queue, open it, autosave,
submit, review, request a revision, adjudicate, void, give a claim back, let it expire, change
the rubric, send work back to review), in any order and often when they should not. Every action
goes through the real do_* function. Beforehand the model (tests/review/pipeline_model.py) says
whether it must succeed or which refusal it must meet, and which audit events it must write;
after every step the invariants compare the database with the model: the comparison's state and
the transitions that led there, judgments, claims, reviews, the decision and the pay (the
Earning rows, to the cent).

Hypothesis switches off a random subset of rules in each run (swarm testing). A comparison is
decided only if taking, opening, submitting and reviewing all stay on: about one run in five
when they are separate rules. So `a_round_of_work` and `someone_does_a_piece_of_work` also have
people do their next piece of work (an annotator judges, a reviewer reviews, an adjudicator
decides) through the same actions; decided and voided comparisons then each end about a third
of the runs. The end states are `hypothesis.event`s: run pytest with
--hypothesis-show-statistics to see them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from hypothesis import event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from marlin.accounts.models import Earning, ExpertProfile, RoleGrant, User
from marlin.audit.actions import verify_chain
from marlin.audit.models import AuditEvent
from marlin.errors import IllegalTransition
from marlin.review import activity, pipeline, queue
from marlin.review.actions import (
    JudgmentClosed,
    NotAssigned,
    StaleDraft,
    do_judgment_heartbeat,
    do_release_claim,
    do_save_draft,
    do_start_judgment,
    do_submit_judgment,
)
from marlin.review.models import Claim, Comparison, Decision, Judgment, Review, WorkSession
from marlin.tasks.actions import do_revise_rubric
from marlin.tasks.rubric import DEFAULT_CRITERIA
from tests.review.factories import (
    RATIONALE,
    agree_all,
    judgment_draft,
    make_comparison,
    make_project,
    ratings_for,
)
from tests.review.pipeline_model import PipelineModel, Policy, Refused

# Who holds which roles. Admins pass every role check (erin); rita and cole also annotate, so
# they may not review or adjudicate a comparison they judged; mallory holds no role at all.
PEOPLE = {
    "alice": ("annotator",),
    "anna": ("annotator",),
    "rita": ("annotator", "reviewer"),
    "cole": ("annotator", "adjudicator"),
    "bob": ("reviewer",),
    "brian": ("reviewer",),
    "carol": ("adjudicator",),
    "erin": ("admin",),
    "mallory": (),
}
WORKERS = ["alice", "anna", "rita", "cole", "bob", "brian", "carol", "erin"]
# Who tries each kind of action: people who may, and people who must be refused.
AS_ANNOTATOR = ["alice", "anna", "rita", "cole", "bob", "mallory"]
AS_REVIEWER = ["bob", "brian", "rita", "erin", "alice", "carol"]
ADJUDICATORS = ["carol", "cole", "erin"]
AS_ADJUDICATOR = [*ADJUDICATORS, "bob", "mallory"]
AS_ADMIN = ["erin", "carol"]
HOURLY_RATES = {"project": 6000, "anna": 9000}  # anna has her own rate in hourly projects

ALLOWED = {  # the state diagram in docs/workflow.md
    ("awaiting_judgments", "in_review"),
    ("in_review", "in_review"),
    ("in_review", "agreed"),
    ("in_review", "disputed"),
    ("agreed", "decided"),
    ("disputed", "decided"),
    ("disputed", "in_review"),
    ("awaiting_judgments", "voided"),
    ("in_review", "voided"),
    ("agreed", "voided"),
    ("disputed", "voided"),
}
# Rarer things a run did, reported as events.
COVERAGE_VERBS = {
    "judgment.revision_requested",
    "comparison.rereview_required",
    "claim.expired",
    "comparison.released",
}
REFUSALS = (
    PermissionDenied,
    IllegalTransition,
    ValidationError,
    JudgmentClosed,
    StaleDraft,
    ObjectDoesNotExist,
)
DAY_MS = 24 * 3600 * 1000

overalls = st.sampled_from([-2, -1, 1, -1, -2, 0, 2])
seconds = st.sampled_from([240, 30, 601])  # 601 s at $90/h is 1502.5 c: rounded half up
# "objects" agrees overall and disagrees on one criterion, which is enough to dispute.
verdicts = st.sampled_from(["agree", "disagree", "objects", "revision"])
# In a round of work most reviews agree, so that some comparisons are decided by agreement.
usual_verdicts = st.sampled_from(["agree"] * 6 + ["disagree", "objects", "revision"])


# derandomize: the end-state floor below is a statement about these runs, so they are the same
# runs every time (a random seed made the floor flaky); the rules still explore 100 sequences.
@settings(stateful_step_count=30, deadline=None, derandomize=True)
class ReviewPipeline(RuleBasedStateMachine):
    """One comparison per run, in a savepoint that the run's teardown rolls back."""

    judgments = Bundle("judgments")  # the names of annotators who started a judgment
    ends: Counter[str] = Counter()  # every run's end state, for TestReviewPipeline's check

    def __init__(self) -> None:
        super().__init__()
        self.users = {user.username: user for user in User.objects.filter(username__in=PEOPLE)}
        self._atomic = transaction.atomic()
        # Marked as Django's TestCase marks its own blocks: this one only isolates the run, so
        # each action's audit events are sealed when the action's block ends, as at a commit
        # (marlin.audit.backends), and the checks below read them.
        self._atomic._from_testcase = True  # type: ignore[attr-defined]
        self._atomic.__enter__()
        self.comparison: Comparison | None = None

    def teardown(self) -> None:
        try:
            if self.comparison is not None:
                event("end state", self.model.state)
                self.ends[self.model.state] += 1
                if self.model.decision is not None:
                    event("decided by", self.model.decision.source)
                verbs = set(
                    AuditEvent.objects.filter(sequence__gt=self.first_sequence).values_list(
                        "verb", flat=True
                    )
                )
                for verb in sorted(verbs & COVERAGE_VERBS):
                    event("run had", verb)
                assert verify_chain() is None
        finally:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    @initialize(
        overlap=st.sampled_from([2, 1, 3]),
        reviewers_per_judgment=st.sampled_from([1, 2, 0]),
        max_steps=st.sampled_from([2, 1]),
        hourly=st.booleans(),
        rereview=st.booleans(),
    )
    def a_comparison_awaits_judgments(
        self,
        overlap: int,
        reviewers_per_judgment: int,
        max_steps: int,
        hourly: bool,
        rereview: bool,
    ) -> None:
        project = make_project(
            overlap=overlap,
            reviewers_per_judgment=reviewers_per_judgment,
            agreement_max_step_difference=max_steps,
            pay_mode="hourly" if hourly else "per_item",
            hourly_rate_cents=HOURLY_RATES["project"],
            rereview_on_rubric_change=rereview,
        )
        if hourly:
            ExpertProfile.objects.create(
                user=self.users["anna"], hourly_rate_cents=HOURLY_RATES["anna"]
            )
        self.comparison = make_comparison(project=project)
        per_item = {
            "judgment": project.pay_per_judgment_cents,
            "review": project.pay_per_review_cents,
            "adjudication": project.pay_per_adjudication_cents,
        }
        policy = Policy(
            overlap, reviewers_per_judgment, max_steps, rereview, hourly, per_item, HOURLY_RATES
        )
        self.model = PipelineModel(policy, PEOPLE)
        self.first_sequence = self.seen_sequence = self.last_sequence()
        # Heartbeats are stamped on a clock a week behind the server's (see spend).
        self.clock_ms = activity.now_ms() - 7 * DAY_MS
        self.seen_state = self.model.state

    # Doing something: ask the model, then the application, and compare ---------------------

    def last_sequence(self) -> int:
        last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True)
        return last.first() or 0

    def attempt(self, what: str, action: Callable[[], Any], predict: Callable[[], list]) -> Any:
        """`predict` updates the model and returns the audit verbs, or raises Refused; then
        `action` runs. They must agree on the outcome and on the audit events written."""
        note(what)
        before = self.last_sequence()
        expected: type[Exception] | None = None
        try:
            verbs = predict()
        except Refused as refusal:
            expected, verbs = refusal.kind, refusal.verbs
        try:
            result = action()
        except REFUSALS as exc:
            assert type(exc) is expected, (
                f"{what}: refused ({exc!r}), the model expected {expected}"
            )
            assert str(exc).strip(), f"{what}: refused without saying why"
            result = None
        else:
            assert expected is None, f"{what}: done, the model expected {expected.__name__}"
        written = AuditEvent.objects.filter(sequence__gt=before).order_by("sequence")
        assert list(written.values_list("verb", flat=True)) == verbs, what
        return result

    def fresh_comparison(self) -> Comparison:
        """What a request loads: the comparison as it is now."""
        return Comparison.objects.select_related("project", "task").get(pk=self.comparison.pk)

    def fresh_judgment(self, owner: str) -> Judgment:
        return Judgment.objects.select_related("comparison").get(pk=self.model.judgments[owner].pk)

    def take_work(self, who: str) -> None:
        """'Next comparison': the queue claims a place on the comparison, or has nothing."""
        comparison = self.attempt(
            f"{who} asks the queue for work",
            lambda: queue.next_comparison(self.users[who]),
            lambda: self.model.next_comparison(who),
        )
        if self.model.may(who, "annotator"):
            assert (comparison == self.comparison) is self.model.handed_out(who)

    def open_comparison(self, who: str) -> str | None:
        """Opening the comparison: the annotator's draft judgment. Returns `who` when it is new."""
        judgment = self.attempt(
            f"{who} opens the comparison",
            lambda: do_start_judgment(self.users[who], self.fresh_comparison()),
            lambda: self.model.start(who),
        )
        if judgment is None or self.model.judgments[who].pk is not None:
            return None
        self.model.judgments[who].pk = judgment.pk
        return who

    def save(self, owner: str, overall: int | None, complete: bool, off: int) -> bool:
        """An autosave; `off` revisions away from the server's when another tab saved first."""
        row = self.fresh_judgment(owner)
        rationale = RATIONALE if complete else "half done"
        draft = judgment_draft(row, overall, rationale=rationale)
        saved = self.attempt(
            f"{owner} saves a draft (overall {overall}, complete {complete}, {off} off)",
            lambda: do_save_draft(self.users[owner], row, draft, revision=row.draft_revision + off),
            lambda: self.model.save(owner, overall, complete, stale=off != 0),
        )
        return saved is not None

    def submit(self, owner: str, overall: int, complete: bool) -> None:
        """The comparison page's submit button: the form is saved, then submitted."""
        if self.save(owner, overall, complete, 0):
            self.attempt(
                f"{owner} submits",
                lambda: do_submit_judgment(self.users[owner], self.fresh_judgment(owner)),
                lambda: self.model.submit(owner),
            )

    def review(self, who: str, owner: str, verdict: str) -> None:
        per_criterion = agree_all(self.comparison)
        if verdict == "objects":
            per_criterion["security"] = {"agree": False, "reason": "The eval() in A is a hole."}
        review = self.attempt(
            f"{who} reviews {owner}'s judgment: {verdict}",
            lambda: pipeline.do_review(
                self.users[who],
                self.fresh_judgment(owner),
                verdict="agree" if verdict == "objects" else verdict,
                reason="Checked the diff against the ratings.",
                per_criterion=per_criterion,
            ),
            lambda: self.model.review(who, owner, verdict),
        )
        if review is not None:
            self.model.reviews[-1].pk = review.pk

    def adjudicate(self, who: str, overall: int) -> None:
        self.attempt(
            f"{who} adjudicates: {overall}",
            lambda: pipeline.do_adjudicate(
                self.users[who],
                self.fresh_comparison(),
                overall=overall,
                ratings=ratings_for(self.comparison, overall),
                rationale="A handles the empty ledger; B crashes on it.",
            ),
            lambda: self.model.adjudicate(who, overall),
        )

    def spend(self, what: str, seconds: int, beat: Callable[[int], None], predict) -> None:
        """The heartbeats a page sends while its user works `seconds`, a gap apart. They are
        stamped on the test's clock, a week behind the server's and moved on past the gap before
        each stretch, so the server counts exactly `seconds`: no interval across stretches, none
        up to the submission that closes the session."""
        step = activity.gap_seconds() * 1000
        start = self.clock_ms + step + 1000
        stamps = [*range(start, start + seconds * 1000, step), start + seconds * 1000]
        self.clock_ms = stamps[-1]

        def beats() -> None:
            for at_ms in stamps:
                beat(at_ms)

        self.attempt(f"{what} ({seconds} s of heartbeats)", beats, predict)

    def work_on_the_judgment(self, who: str, seconds: int) -> None:
        comparison = self.fresh_comparison()
        self.spend(
            f"{who} works on the comparison page",
            seconds,
            lambda at_ms: do_judgment_heartbeat(self.users[who], comparison, at_ms=at_ms),
            lambda: self.model.judgment_heartbeats(who, seconds),
        )

    def work_on_a_review(self, who: str, owner: str, seconds: int) -> None:
        judgment_id = self.model.judgments[owner].pk
        self.spend(
            f"{who} works on the review of {owner}'s judgment",
            seconds,
            lambda at_ms: pipeline.do_review_heartbeat(self.users[who], judgment_id, at_ms=at_ms),
            lambda: self.model.review_heartbeats(who, owner, seconds),
        )

    def work_on_the_adjudication(self, who: str, seconds: int) -> None:
        comparison = self.fresh_comparison()
        self.spend(
            f"{who} works on the adjudication page",
            seconds,
            lambda at_ms: pipeline.do_adjudication_heartbeat(
                self.users[who], comparison, at_ms=at_ms
            ),
            lambda: self.model.adjudication_heartbeats(who, seconds),
        )

    # Everyone with useful work does a piece of it ------------------------------------------

    def anyone_has_work(self) -> bool:
        return any(self.model.next_piece_of_work(name) for name in WORKERS)

    def do_the_next_piece_of_work(
        self, name: str, opinion: int, verdict: str, spent: int
    ) -> str | None:
        """An annotator judges (takes the comparison from the queue, opens it, submits the form)
        or resubmits, a reviewer reviews, an adjudicator decides. Returns a new judgment's
        annotator."""
        work = self.model.next_piece_of_work(name)
        started = None
        if work is None:
            return None
        if work[0] in ("judge", "resubmit"):
            if name not in self.model.judgments:
                if name not in self.model.claims:
                    self.take_work(name)
                started = self.open_comparison(name)
            self.work_on_the_judgment(name, spent)
            self.submit(name, opinion, True)
        elif work[0] == "review":
            self.work_on_a_review(name, work[1], spent)
            self.review(name, work[1], verdict)
        else:
            self.work_on_the_adjudication(name, spent)
            self.adjudicate(name, opinion)
        return started

    @precondition(anyone_has_work)
    @rule(
        target=judgments,
        order=st.permutations(WORKERS),
        opinions=st.fixed_dictionaries({name: overalls for name in WORKERS}),
        verdict_of=st.fixed_dictionaries({name: usual_verdicts for name in WORKERS}),
        spent=seconds,
    )
    def a_round_of_work(
        self, order: list[str], opinions: dict, verdict_of: dict, spent: int
    ) -> Any:
        """Everyone who has useful work waiting when the round starts does one piece of it, in
        the order drawn (work that appears during the round waits for the next one)."""
        busy = [name for name in order if self.model.next_piece_of_work(name)]
        started = [
            self.do_the_next_piece_of_work(name, opinions[name], verdict_of[name], spent)
            for name in busy
        ]
        return multiple(*[name for name in started if name])

    @precondition(anyone_has_work)
    @rule(
        target=judgments,
        who=st.sampled_from(WORKERS),
        opinion=overalls,
        verdict=usual_verdicts,
        spent=seconds,
    )
    def someone_does_a_piece_of_work(self, who: str, opinion: int, verdict: str, spent: int):
        """The first person from `who` on (in WORKERS' order) who has useful work does one piece."""
        at = WORKERS.index(who)
        name = next(n for n in WORKERS[at:] + WORKERS[:at] if self.model.next_piece_of_work(n))
        return self.do_the_next_piece_of_work(name, opinion, verdict, spent) or multiple()

    # Each action on its own, by people who may and people who may not ----------------------

    @rule(target=judgments, who=st.sampled_from(AS_ANNOTATOR))
    def take_work_from_the_queue(self, who: str) -> Any:
        self.take_work(who)
        if not self.model.handed_out(who):
            return multiple()
        return self.open_comparison(who) or multiple()

    @rule(target=judgments, who=st.sampled_from(AS_ANNOTATOR))
    def open_the_comparison_from_a_link(self, who: str) -> Any:
        return self.open_comparison(who) or multiple()

    @rule(
        owner=judgments,
        overall=overalls | st.none(),
        complete=st.booleans(),
        off=st.sampled_from([0, 0, 0, -1, 1]),
    )
    def autosave(self, owner: str, overall: int | None, complete: bool, off: int) -> None:
        self.save(owner, overall, complete, off)

    @rule(owner=judgments, overall=overalls, complete=st.booleans())
    def submit_the_form(self, owner: str, overall: int, complete: bool) -> None:
        self.submit(owner, overall, complete)

    @rule(
        who=st.sampled_from(list(PEOPLE)),
        page=st.sampled_from(["comparison", "review", "adjudication"]),
        owner=judgments,
        spent=seconds,
    )
    def keep_a_page_open(self, who: str, page: str, owner: str, spent: int) -> None:
        """Heartbeats from the comparison, review or adjudication page, by anyone: time counts
        only for someone who may do that work now."""
        if page == "comparison":
            self.work_on_the_judgment(who, spent)
        elif page == "review":
            self.work_on_a_review(who, owner, spent)
        else:
            self.work_on_the_adjudication(who, spent)

    @rule(owner=judgments, intruder=st.sampled_from(["anna", "rita", "bob", "mallory"]))
    def someone_else_edits_and_submits(self, owner: str, intruder: str) -> None:
        if intruder == owner:
            return
        row, user = self.fresh_judgment(owner), self.users[intruder]

        def refused_as_not_theirs() -> list:
            raise Refused(NotAssigned)

        def refused_as_not_an_annotator() -> list:
            annotator = self.model.may(intruder, "annotator")
            raise Refused(NotAssigned if annotator else PermissionDenied)

        self.attempt(
            f"{intruder} edits {owner}'s draft",
            lambda: do_save_draft(user, row, judgment_draft(row, 3), revision=row.draft_revision),
            refused_as_not_theirs,
        )
        self.attempt(
            f"{intruder} submits {owner}'s judgment",
            lambda: do_submit_judgment(user, row),
            refused_as_not_an_annotator,
        )

    @precondition(lambda self: self.model.claims)
    @rule(who=st.sampled_from(AS_ANNOTATOR))
    def give_the_claim_back(self, who: str) -> None:
        held = who in self.model.claims
        released = self.attempt(
            f"{who} gives the comparison back",
            lambda: do_release_claim(self.users[who], self.fresh_comparison()),
            lambda: self.model.release(who),
        )
        if self.model.may(who, "annotator"):
            assert released is held

    @precondition(lambda self: self.model.claims)
    @rule()
    def claims_expire(self) -> None:
        """Time passes: every open claim is older than the project's timeout."""
        timeout = self.comparison.project.claim_timeout_minutes
        later = timezone.now() + timedelta(minutes=timeout + 1)
        self.attempt(
            "claims expire", lambda: queue.release_expired_claims(later), self.model.expire_claims
        )

    @rule(who=st.sampled_from(AS_REVIEWER), owner=judgments, verdict=verdicts)
    def review_a_judgment(self, who: str, owner: str, verdict: str) -> None:
        self.review(who, owner, verdict)

    @rule(who=st.sampled_from(AS_ADJUDICATOR), overall=overalls)
    def adjudicate_the_comparison(self, who: str, overall: int) -> None:
        self.adjudicate(who, overall)

    @precondition(lambda self: self.model.state != "awaiting_judgments")
    @rule(who=st.sampled_from(["bob", "carol", "mallory"]))
    def decide_from_agreement(self, who: str) -> None:
        self.attempt(
            f"{who} decides from agreement",
            lambda: pipeline.do_decide_from_agreement(self.users[who], self.fresh_comparison()),
            lambda: self.model.decide_from_agreement(who),
        )

    def void(self, who: str, reason: str) -> None:
        self.attempt(
            f"{who} voids the comparison ({reason!r})",
            lambda: pipeline.do_void(self.users[who], self.fresh_comparison(), reason=reason),
            lambda: self.model.void(who, reason),
        )

    @rule(
        who=st.sampled_from([*ADJUDICATORS, "bob"]), reason=st.sampled_from(["bad task", "broken"])
    )
    def void_the_comparison(self, who: str, reason: str) -> None:
        self.void(who, reason)

    @rule(who=st.sampled_from(["carol", "mallory"]))
    def void_without_a_reason(self, who: str) -> None:
        self.void(who, " ")

    def some_judgment_in(self, status: str) -> bool:
        return any(j.status == status for j in self.model.judgments.values())

    def send_back(self, who: str) -> None:
        self.attempt(
            f"{who} sends judgments on an older rubric back to review",
            lambda: pipeline.do_require_rereview(self.users[who], self.comparison.project),
            lambda: self.model.require_rereview(who),
        )

    @precondition(lambda self: self.model.version < 3 and self.some_judgment_in("submitted"))
    @rule(who=st.sampled_from(AS_ADMIN), and_send_back=st.booleans())
    def change_the_rubric(self, who: str, and_send_back: bool) -> None:
        """A new rubric version; the admin may send older judgments back to review at once."""
        criteria = [dict(c) for c in DEFAULT_CRITERIA]
        criteria[0]["guidance"] += f" Run the hidden tests (version {self.model.version + 1})."
        self.attempt(
            f"{who} revises the rubric",
            lambda: do_revise_rubric(
                self.users[who], self.comparison.project.rubric, criteria, note="Hidden tests."
            ),
            lambda: self.model.revise_rubric(who),
        )
        if and_send_back:
            self.send_back(who)

    @precondition(lambda self: self.model.version > 1)  # the button matters after a change
    @rule(who=st.sampled_from(AS_ADMIN))
    def send_older_judgments_back_to_review(self, who: str) -> None:
        self.send_back(who)

    # Invariants -----------------------------------------------------------------------------

    @invariant()
    def the_state_is_the_models_and_every_change_was_allowed(self) -> None:
        assert Comparison.objects.get(pk=self.comparison.pk).state == self.model.state
        changes = AuditEvent.objects.filter(
            object_type="review.comparison",
            object_id=str(self.comparison.pk),
            sequence__gt=self.seen_sequence,
        ).order_by("sequence")
        for change in changes:
            self.seen_sequence = change.sequence
            if "state" not in change.old_values:
                continue
            old, new = change.old_values["state"], change.new_values["state"]
            assert (old, new) in ALLOWED, change
            assert old == self.seen_state, f"{change.verb} left {old}, not {self.seen_state}"
            self.seen_state = new
        assert self.seen_state == self.model.state

    @invariant()
    def judgments_and_claims_are_the_models(self) -> None:
        rows = Judgment.objects.filter(comparison=self.comparison).values_list(
            "annotator__username",
            "pk",
            "status",
            "rubric_version__number",
            "draft_revision",
            "overall",
            "active_seconds",
        )
        assert {name: tuple(rest) for name, *rest in rows} == {
            name: (j.pk, j.status, j.version, j.revision, j.overall, j.active_seconds)
            for name, j in self.model.judgments.items()
        }
        claims = Claim.objects.filter(comparison=self.comparison, released_at__isnull=True)
        assert set(claims.values_list("annotator__username", flat=True)) == self.model.claims
        assert self.model.used_slots() <= self.model.policy.overlap
        assert len(self.model.live()) <= self.model.policy.overlap
        if self.model.state != "awaiting_judgments":
            assert not self.model.claims

    @invariant()
    def open_work_sessions_are_the_models(self) -> None:
        names = {pk: name for name, pk in ((n, j.pk) for n, j in self.model.judgments.items())}
        rows = WorkSession.objects.filter(
            comparison=self.comparison, closed_ms__isnull=True
        ).values_list("kind", "user__username", "subject_id", "active_ms")
        opened = {
            (kind, who, names[subject]) if kind == "review" else (kind, who): active_ms // 1000
            for kind, who, subject, active_ms in rows
        }
        assert opened == self.model.sessions

    @invariant()
    def reviews_are_the_models_and_never_by_someone_who_judged(self) -> None:
        rows = Review.objects.filter(judgment__comparison=self.comparison).values_list(
            "pk",
            "judgment__annotator__username",
            "reviewer__username",
            "verdict",
            "superseded_at",
            "active_seconds",
        )
        assert sorted((pk, j, r, v, s is not None, t) for pk, j, r, v, s, t in rows) == sorted(
            (r.pk, r.judgment, r.reviewer, r.verdict, r.superseded, r.active_seconds)
            for r in self.model.reviews
        )
        for owner in self.model.judgments:
            active = self.model.active_reviews(owner)
            assert len(active) <= self.model.policy.reviewers_per_judgment
        assert not {r.reviewer for r in self.model.reviews} & set(self.model.judgments)

    @invariant()
    def a_comparison_in_review_waits_for_someone(self) -> None:
        if self.model.state == "in_review":
            assert self.model.waits_for_someone(), "in review, but nobody can move it on"

    @invariant()
    def the_decision_and_the_pay_follow_the_rules(self) -> None:
        decisions = list(Decision.objects.filter(comparison=self.comparison))
        expected = self.model.decision
        if expected is None:
            assert not decisions
        else:
            (decision,) = decisions
            by = decision.decided_by.username if decision.decided_by else None
            assert (decision.source, decision.overall, by, decision.active_seconds) == (
                expected.source,
                expected.overall,
                expected.decided_by,
                expected.active_seconds,
            )
            # Every judgment rated each criterion like its overall preference.
            assert set(decision.ratings.values()) == {expected.overall}
            decided = AuditEvent.objects.filter(
                object_type="review.comparison",
                object_id=str(self.comparison.pk),
                verb__in=["comparison.decided", "comparison.adjudicated"],
            )
            assert decided.count() == 1
        earned = Earning.objects.values_list(
            "user__username", "kind", "source_id", "amount_cents", "active_seconds"
        )
        assert Counter(earned) == self.model.earnings(decisions[0].pk if decisions else None)

    @invariant()
    def a_voided_comparison_pays_nothing_and_holds_no_place(self) -> None:
        if self.model.state == "voided":
            assert Comparison.objects.get(pk=self.comparison.pk).void_reason.strip()
            assert {j.status for j in self.model.judgments.values()} <= {"voided"}
            assert not self.model.claims and self.model.decision is None


@pytest.mark.slow
@pytest.mark.django_db  # for conftest's database-only pass (a Django TestCase has the database)
class TestReviewPipeline(ReviewPipeline.TestCase, TestCase):
    """Runs the state machine (the people are created once; each run rolls back its rows).
    Run with --hypothesis-show-statistics to see the end states the runs reached."""

    @classmethod
    def setUpTestData(cls) -> None:
        for name, roles in PEOPLE.items():
            user = User.objects.create_user(username=name)
            RoleGrant.objects.bulk_create(RoleGrant(user=user, role=role) for role in roles)

    def runTest(self) -> None:
        ReviewPipeline.ends.clear()
        super().runTest()
        # The pay and void invariants only mean something in runs that get there (they used to
        # rest on two hand-written examples).
        runs = sum(ReviewPipeline.ends.values())
        for end in ("decided", "voided"):
            assert ReviewPipeline.ends[end] >= runs // 10, ReviewPipeline.ends

    # What hypothesis.is_hypothesis_test looks for: pytest then reports the statistics.
    runTest.is_hypothesis_test = True  # type: ignore[attr-defined]
