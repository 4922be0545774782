"""Folders inside the data directory, derived when asked so tests can point DATA_DIR elsewhere."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


def mirrors_dir() -> Path:
    return data_dir() / "mirrors"


def workspaces_dir() -> Path:
    return data_dir() / "workspaces"


def environments_dir() -> Path:
    return data_dir() / "environments"


def exports_dir() -> Path:
    return data_dir() / "exports"


def tools_root() -> Path:
    return data_dir()
