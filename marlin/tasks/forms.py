from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django import forms
from pydantic import ValidationError as PydanticValidationError

from marlin.catalog.models import MirrorStatus, Repository
from marlin.grading.spec import CheckSpec, EnvironmentSpec
from marlin.sandbox.egress import PACKAGE_REGISTRIES, registry_allow_list
from marlin.sandbox.gitutil import GitError, resolve_commit
from marlin.tasks.models import PROJECT_POLICY_FIELDS, Project, TaskKind


def parse_checks(text: str) -> list[dict]:
    """Checks are edited as JSON (a list of check specs); errors name the check and the field."""

    text = (text or "").strip()
    if not text:
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"Checks must be JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc
    if not isinstance(raw, list):
        raise forms.ValidationError("Checks must be a JSON list of check objects.")
    checks = []
    for index, item in enumerate(raw, start=1):
        try:
            checks.append(CheckSpec.model_validate(item).model_dump(mode="json"))
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'check'}: {err['msg']}"
                for err in exc.errors()
            )
            raise forms.ValidationError(f"Check {index}: {problems}") from exc
    return checks


def parse_environment_spec(text: str) -> dict:
    """An environment spec is edited as a JSON object; errors name the field."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"The environment spec must be JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from exc
    if not isinstance(raw, dict):
        raise forms.ValidationError(
            'The environment spec must be a JSON object, e.g. {"python": "3.9", '
            '"install": "python -m pip install -e ."}'
        )
    try:
        spec = EnvironmentSpec.model_validate(raw)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors()
        )
        raise forms.ValidationError(f"Environment spec: {problems}") from exc
    return spec.model_dump(mode="json", exclude_defaults=True)


class TaskForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.filter(is_active=True))
    repository = forms.ModelChoiceField(
        queryset=Repository.objects.filter(mirror_status=MirrorStatus.READY),
        help_text=(
            "Only mirrored repositories can be used: the base commit is checked in the mirror."
        ),
    )
    base_ref = forms.CharField(
        max_length=255,
        label="Base commit",
        help_text="A commit SHA, branch or tag; resolved to a SHA.",
    )
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=TaskKind.choices)
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="What the pull request should do, in Markdown. Raw HTML is shown as text.",
    )
    setup_command = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Runs once in the sandbox before the checks, e.g. pip install -e .",
    )
    environment_spec = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text=(
            'JSON object, e.g. {"python": "3.9", "pip_packages": ["pytest==7.4.0"], '
            '"install": "python -m pip install -e ."}: a venv on that Python, built with uv '
            "before the setup command (docs/sandbox.md)."
        ),
    )
    checks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}),
        help_text=(
            'JSON list, e.g. [{"kind": "command", "name": "tests", '
            '"command": "python -m pytest -q"}]'
        ),
    )

    def clean_checks(self) -> list[dict]:
        return parse_checks(self.cleaned_data.get("checks", ""))

    def clean_environment_spec(self) -> dict:
        return parse_environment_spec(self.cleaned_data.get("environment_spec", ""))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        repository: Repository | None = data.get("repository")
        ref = data.get("base_ref")
        if repository is not None and ref:
            try:
                data["base_commit"] = resolve_commit(Path(repository.mirror_path), ref.strip())
            except (GitError, ValueError) as exc:
                # resolve_commit names the ref and the problem, never the mirror's path on the
                # server; the repository is named here.
                self.add_error("base_ref", f"{repository.name}: {exc}")
        return data

    def task_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "repository": data["repository"],
            "base_ref": data["base_ref"].strip(),
            "base_commit": data["base_commit"],
            "title": data["title"],
            "kind": data["kind"],
            "prompt": data["prompt"],
            "setup_command": data["setup_command"],
            "environment_spec": data["environment_spec"],
            "checks": data["checks"],
        }


class ReviewTaskForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("send_back", "Send back")])
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class CriterionForm(forms.Form):
    """One criterion of the rubric editor (a form per criterion in CriterionFormSet)."""

    key = forms.CharField(
        max_length=40,
        help_text="Lower-case letters, digits and underscores; stored with every rating, so "
        "keep it when you only reword a criterion. 'overall' is the overall preference.",
    )
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        max_length=300, required=False, help_text="Optional: one line shown under the name."
    )
    guidance = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What to look at and how to decide; experts open it next to the scale.",
    )
    scale = forms.ChoiceField(
        choices=[("7-point", "7 points: A much better … tie … B much better")], initial="7-point"
    )
    allow_not_applicable = forms.BooleanField(
        required=False,
        initial=True,
        label="'Not applicable' allowed (unchecked: every expert must rate it)",
    )

    def criterion(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in self.fields if name in CRITERION_FIELDS}


CRITERION_FIELDS = ("key", "name", "description", "guidance", "scale", "allow_not_applicable")
# A blank form to add a criterion without JavaScript; the page's "Add a criterion" adds more.
CriterionFormSet = forms.formset_factory(
    CriterionForm, extra=1, can_delete=True, can_order=True, min_num=1, validate_min=True
)


class RubricNoteForm(forms.Form):
    change_note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Required: what changed and why."
    )


def criteria_problems(exc: PydanticValidationError) -> list[str]:
    """The rubric's validation errors in words, naming the criterion by its position."""
    problems = []
    for err in exc.errors():
        where = [str(p) for p in err["loc"] if p != "criteria"]
        if where and where[0].isdigit():
            where[0] = f"criterion {int(where[0]) + 1}"
        problems.append(f"{' '.join(where) or 'rubric'}: {err['msg']}")
    return problems


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", *PROJECT_POLICY_FIELDS]

    def clean_package_registries(self) -> list[str]:
        value = self.cleaned_data.get("package_registries") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise forms.ValidationError(
                'Package registries are a JSON list of names, e.g. ["pypi", "npm"] or '
                '["pypi", "mirror.example.com:443"].'
            )
        try:
            registry_allow_list(value)
        except ValueError as exc:
            raise forms.ValidationError(
                f"{exc}. Known names: {', '.join(sorted(PACKAGE_REGISTRIES))}."
            ) from None
        return value
