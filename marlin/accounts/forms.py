from __future__ import annotations

from django import forms

from marlin.accounts.models import ExpertProfile


def _split_list(value: str) -> list[str]:
    return sorted(
        {part.strip().lower() for part in value.replace(";", ",").split(",") if part.strip()}
    )


class ExpertProfileForm(forms.Form):
    skills = forms.CharField(required=False, help_text="Comma-separated, e.g. backend, security")
    languages = forms.CharField(required=False, help_text="Comma-separated, e.g. python, go")
    years_experience = forms.IntegerField(min_value=0, max_value=70)
    bio = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    @classmethod
    def for_profile(cls, profile: ExpertProfile) -> ExpertProfileForm:
        return cls(
            initial={
                "skills": ", ".join(profile.skills),
                "languages": ", ".join(profile.languages),
                "years_experience": profile.years_experience,
                "bio": profile.bio,
            }
        )

    def changes(self) -> dict:
        data = self.cleaned_data
        return {
            "skills": _split_list(data["skills"]),
            "languages": _split_list(data["languages"]),
            "years_experience": data["years_experience"],
            "bio": data["bio"],
        }


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'export script'.")
