"""The home page: what each role can do next, as links to the pages that do it."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import User


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    description: str


@dataclass(frozen=True)
class Section:
    title: str
    links: list[Link]


def dashboard_sections(user: User) -> list[Section]:
    sections: list[Section] = []
    if user.has_role("admin", "author"):
        sections.append(
            Section(
                "Authoring",
                [
                    Link(
                        "Repositories",
                        reverse("catalog:list"),
                        "The catalog: add, import and mirror repositories.",
                    ),
                    Link(
                        "Tasks", reverse("tasks:list"), "Write tasks on a repository at a commit."
                    ),
                    Link(
                        "New task",
                        reverse("tasks:create"),
                        "Start a task from a mirrored repository.",
                    ),
                    Link(
                        "Agents",
                        reverse("agents:list"),
                        "Models and command-line agents that write candidates; pools and runs.",
                    ),
                ],
            )
        )
    if user.has_role("annotator"):
        sections.append(
            Section(
                "Annotate",
                [
                    Link(
                        "Next comparison",
                        reverse("review:queue"),
                        "Judge two changes blind: your queue and drafts.",
                    ),
                    Link(
                        "Revisions requested",
                        reverse("pipeline:revisions"),
                        "Judgments reviewers sent back, with their comments.",
                    ),
                ],
            )
        )
    if user.has_role("admin", "reviewer"):
        sections.append(
            Section(
                "Reviewing",
                [
                    Link(
                        "Review queue",
                        reverse("pipeline:queue"),
                        "Agree or disagree with submitted judgments.",
                    ),
                    Link(
                        "Tasks awaiting approval",
                        reverse("tasks:list") + "?status=draft",
                        "Approve drafts or send them back.",
                    ),
                ],
            )
        )
    if user.has_role("admin", "adjudicator"):
        sections.append(
            Section(
                "Adjudication",
                [
                    Link(
                        "Disputed comparisons",
                        reverse("pipeline:adjudication_queue"),
                        "Record the final decision where judgments or reviews disagree.",
                    )
                ],
            )
        )
    if user.has_role("annotator", "reviewer", "adjudicator"):
        sections.append(
            Section(
                "Pay",
                [Link("Earnings", reverse("earnings:mine"), "Your pay and active time per month.")],
            )
        )
    sections.append(
        Section(
            "Projects",
            [Link("Projects", reverse("tasks:projects"), "Campaigns, their rubrics and policies.")],
        )
    )
    if user.role_names():
        results = [
            Link(
                "Leaderboards",
                reverse("analytics:projects"),
                "Agent rankings with intervals, and agreement.",
            )
        ]
        if user.has_role("admin", "author"):
            results.append(
                Link(
                    "Exports",
                    reverse("exports:list"),
                    "Preference datasets, records, predictions, task sets.",
                )
            )
        sections.append(Section("Results", results))
    if user.has_role("admin"):
        sections.append(
            Section(
                "Administration",
                [
                    Link(
                        "Audit log", reverse("audit:list"), "Every change: who, when, what and why."
                    ),
                    Link(
                        "Review dashboard and payroll",
                        reverse("earnings:dashboard"),
                        "Throughput, agreement, cost; payroll CSV.",
                    ),
                    Link("Django admin", reverse("admin:index"), "Users, roles and raw records."),
                ],
            )
        )
    return sections


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "home.html", {"sections": dashboard_sections(request.user)})
