"""Forms of the catalog pages. URL checks live in validation.py; the form only reports them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from marlin.catalog.models import MirrorStatus
from marlin.catalog.validation import InvalidRepositoryURL, validate_url

MAX_IMPORT_BYTES = 20 * 1024 * 1024


class FilterForm(forms.Form):
    q = forms.CharField(required=False, label="Name contains", max_length=200)
    language = forms.CharField(required=False, max_length=50)
    tag = forms.CharField(required=False, max_length=64)
    status = forms.ChoiceField(
        required=False, label="Mirror status", choices=[("", "any"), *MirrorStatus.choices]
    )


class AddRepositoryForm(forms.Form):
    url = forms.CharField(
        label="Repository URL",
        max_length=500,
        help_text="https://host/owner/name, ssh://host/path or git@host:owner/name",
    )
    language = forms.CharField(required=False, max_length=50)
    tags = forms.CharField(required=False, max_length=500, help_text="Separated by ; or |")
    mirror = forms.BooleanField(required=False, initial=True, label="Mirror it now")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        try:
            validate_url(url, allow_local=bool(settings.ALLOW_LOCAL_REPOSITORIES))
        except InvalidRepositoryURL as exc:
            raise forms.ValidationError(f"This URL cannot be used: {exc}.") from None
        return url

    def tag_list(self) -> list[str]:
        raw = self.cleaned_data.get("tags") or ""
        return [tag.strip() for tag in raw.replace("|", ";").split(";") if tag.strip()]


class ImportForm(forms.Form):
    file = forms.FileField(
        required=False, help_text="A plain list, CSV with a url column, or JSON lines"
    )
    text = forms.CharField(
        required=False, label="Or paste the list", widget=forms.Textarea(attrs={"rows": 8})
    )
    mirror = forms.BooleanField(
        required=False, label="Mirror the new repositories now (starts one clone each)"
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError(
                    f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB; split it."
                )
            try:
                cleaned["content"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
            cleaned["filename"] = upload.name
        elif cleaned.get("text", "").strip():
            cleaned["content"] = cleaned["text"]
            cleaned["filename"] = "pasted"
        else:
            raise forms.ValidationError("Choose a file or paste a list.")
        return cleaned
