"""Python interpreters on the worker, for environments that ask for a version ("3.9").

The sandbox sees `/usr` and nothing of `/root` or `/home`, so an interpreter that lives
elsewhere (pyenv's `~/.pyenv/versions/3.9.18`, uv's managed pythons) is mounted read-only at its
own path: a venv made from it links there (`home` in pyvenv.cfg, the `python` symlink), and
pyenv's builds load `libpython` from an absolute path. Looked for, in order: the administrator's
list (MARLIN_PYTHON_INTERPRETERS), uv's managed pythons (`uv python find`), pyenv's versions,
then `pythonX.Y` in /usr/bin, /usr/local/bin and on PATH. Every candidate is run once to check
that it is that version. Nothing is ever downloaded here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from marlin.sandbox.core import Mount

__all__ = [
    "UV_PATH",
    "Interpreter",
    "InterpreterNotFound",
    "find_interpreter",
    "interpreter_mounts",
    "parse_interpreter_setting",
    "uv_binary",
    "uv_mount",
]

# Where the uv binary is mounted (read-only) for environment builds.
UV_PATH = "/opt/marlin-uv/uv"
SETTING = "MARLIN_PYTHON_INTERPRETERS"
_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")
_PROBE_TIMEOUT_SECONDS = 20
# Prefixes the sandbox already shows: nothing to mount.
_VISIBLE = (Path("/usr"),)


class InterpreterNotFound(Exception):
    """No interpreter of the version on this worker; the message says how to provide one."""


@dataclass(frozen=True)
class Interpreter:
    version: str
    executable: Path  # absolute, symlinks resolved
    prefix: Path  # the installation directory, mounted at its own path
    found_by: str  # "setting", "uv", "pyenv" or "system"


def find_interpreter(
    version: str,
    *,
    configured: Mapping[str, str] | None = None,
    pyenv_root: Path | None = None,
    uv: Path | None = None,
) -> Interpreter:
    """The worker's interpreter for `version` ("3.9"), or InterpreterNotFound saying where it
    looked and how to install one."""
    if not _VERSION.match(version):
        raise InterpreterNotFound(
            f"python {version!r} is not a version Marlin can look for; give major.minor, e.g. '3.9'"
        )
    looked: list[str] = []
    configured = configured or {}
    if version in configured:
        found = _probe(Path(configured[version]), version, "setting")
        if found is not None:
            return found
        raise InterpreterNotFound(
            f"{SETTING} names {configured[version]} for Python {version}, but that is not a "
            f"working Python {version} interpreter; fix the path"
        )
    looked.append(SETTING)
    uv = uv if uv is not None else uv_binary()
    if uv is not None:
        looked.append("uv's managed pythons")
        found = _from_uv(uv, version)
        if found is not None:
            return found
    root = pyenv_root if pyenv_root is not None else _default_pyenv_root()
    looked.append(f"pyenv ({root}/versions)")
    for candidate in _pyenv_candidates(root, version):
        found = _probe(candidate, version, "pyenv")
        if found is not None:
            return found
    looked.append(f"python{version} in /usr/bin, /usr/local/bin and PATH")
    for candidate in _system_candidates(version):
        found = _probe(candidate, version, "system")
        if found is not None:
            return found
    raise InterpreterNotFound(
        f"Python {version} is not installed on this worker (looked in: {', '.join(looked)}). "
        f"Install it with `uv python install {version}` where the worker may download, or "
        f"point Marlin at one with {SETTING}='{version}=/path/to/bin/python{version}', then "
        "re-run the checks to rebuild the environment."
    )


def interpreter_mounts(interpreter: Interpreter) -> list[Mount]:
    """The interpreter's installation, read-only at its own path (nothing for /usr)."""
    if any(interpreter.prefix.is_relative_to(visible) for visible in _VISIBLE):
        return []
    return [Mount(source=interpreter.prefix, target=str(interpreter.prefix))]


def uv_binary() -> Path | None:
    """The uv executable of the `uv` package Marlin depends on, else uv on PATH."""
    try:
        return Path(find_uv_bin())
    except FileNotFoundError:
        found = shutil.which("uv")
        return Path(found) if found else None


def uv_mount() -> Mount:
    binary = uv_binary()
    if binary is None:
        raise InterpreterNotFound(
            "uv is not installed on this worker; install Marlin's dependencies again "
            "(`pip install -e .` installs the uv package)"
        )
    return Mount(source=binary.resolve(), target=UV_PATH)


def parse_interpreter_setting(text: str) -> dict[str, str]:
    """'3.9=/opt/py39/bin/python3.9,3.8=/opt/py38/bin/python3.8' as a dict; ValueError with the
    bad item otherwise."""
    result: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        version, sep, path = item.partition("=")
        if not sep or not _VERSION.match(version.strip()) or not path.strip().startswith("/"):
            raise ValueError(
                f"{SETTING}: {item!r} should be VERSION=/absolute/path, e.g. "
                "'3.9=/opt/python3.9/bin/python3.9'"
            )
        result[version.strip()] = path.strip()
    return result


def _from_uv(uv: Path, version: str) -> Interpreter | None:
    try:
        found = subprocess.run(
            [str(uv), "python", "find", "--no-python-downloads", "--managed-python", version],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            env={**os.environ, "UV_NO_CONFIG": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = found.stdout.strip()
    return _probe(Path(path), version, "uv") if found.returncode == 0 and path else None


def _default_pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _pyenv_candidates(root: Path, version: str) -> list[Path]:
    versions = root / "versions"
    if not versions.is_dir():
        return []
    matching = [
        d for d in versions.iterdir() if d.name == version or d.name.startswith(f"{version}.")
    ]

    def patch_level(path: Path) -> tuple[int, ...]:
        tail = path.name[len(version) :].lstrip(".")
        return tuple(int(p) for p in tail.split(".") if p.isdigit())

    # The newest patch release first (3.9.18 before 3.9.2).
    return [d / "bin" / f"python{version}" for d in sorted(matching, key=patch_level, reverse=True)]


def _system_candidates(version: str) -> list[Path]:
    names = [Path("/usr/bin") / f"python{version}", Path("/usr/local/bin") / f"python{version}"]
    on_path = shutil.which(f"python{version}")
    if on_path:
        names.append(Path(on_path))
    return names


def _probe(path: Path, version: str, found_by: str) -> Interpreter | None:
    """The interpreter at `path` if it runs and is `version` (pyenv's shims, for one, are not
    interpreters)."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return None
    try:
        answer = subprocess.run(
            [
                str(path),
                "-E",  # (not -I: Python 2 has no -I, and 2.7 should be found to be refused)
                "-s",
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix)",
            ],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = answer.stdout.split()
    if answer.returncode != 0 or len(lines) < 2 or lines[0] != version:
        return None
    return Interpreter(
        version=version,
        executable=path.resolve(),
        prefix=Path(lines[1]).resolve(),
        found_by=found_by,
    )
