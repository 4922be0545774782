"""API keys: where they come from, and keeping them out of everything we write down.

Keys live in the worker's environment or in a secrets file the operator mounts; the database only
holds the *name* of the variable or the path of the file. Nothing here logs a key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"
# Shorter values would redact ordinary words ("x", "test") all over a transcript.
_MIN_SECRET_LENGTH = 6


class SecretError(ValueError):
    """A key was asked for but is not where the settings say it is."""


def resolve_api_key(
    settings: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> str | None:
    """Return the key named by ``api_key_env`` (an environment variable) or ``api_key_file``.

    Returns None when the settings name neither (local servers such as vLLM or Ollama need no
    key). Raises SecretError, without the value, when the named place is empty or missing.
    """
    environ = os.environ if environ is None else environ
    env_name = settings.get("api_key_env")
    file_path = settings.get("api_key_file")
    if env_name and file_path:
        raise SecretError("Set api_key_env or api_key_file, not both.")
    if env_name:
        value = environ.get(str(env_name), "").strip()
        if not value:
            raise SecretError(
                f"Environment variable {env_name} is not set or empty; export it in the worker's "
                "environment (it is never stored in the database)."
            )
        return value
    if file_path:
        path = Path(str(file_path)).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"Cannot read the API key file {path}: {exc.strerror}.") from None
        if not value:
            raise SecretError(f"The API key file {path} is empty.")
        return value
    return None


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret value in ``text`` with ``[redacted]``."""
    # Longest first so a key that contains another key is replaced whole.
    values = sorted(
        {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
    )
    for value in values:
        text = text.replace(value, REDACTED)
    return text
