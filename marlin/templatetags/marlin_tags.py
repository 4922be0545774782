from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from marlin.markdown import render_markdown
from marlin.tasks.rubric import SCALE_7

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3 in render_markdown


@register.filter
def cents(value: int | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    value = abs(int(value))
    return f"{sign}${value // 100:,}.{value % 100:02d}"


@register.filter
def get_item(mapping: dict, key: str):
    return mapping.get(key) if isinstance(mapping, dict) else None


_PREFERENCE_WORDS = dict(SCALE_7)


@register.filter
def preference(value: object) -> str:
    """A rating or preference in words ("A much better", "Tie", "n/a"), the number only as a
    tooltip. Accepts the stored int, its string form, None or "na" (not applicable)."""
    if value is None or value in ("na", ""):
        return mark_safe('<span class="pref pref-na" title="not applicable">n/a</span>')
    try:
        number = int(str(value))
    except ValueError:
        return str(value)
    if number not in _PREFERENCE_WORDS:
        return str(value)
    return format_html(
        '<span class="pref" data-value="{}" title="{}">{}</span>',
        number,
        f"{number:+d}" if number else "0",
        _PREFERENCE_WORDS[number],
    )
