"""Finding the worker's interpreters for a spec's Python version: the setting first, then uv's
managed pythons, pyenv, the system's; each one run to check its version; clear messages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from marlin.sandbox.interpreters import (
    InterpreterNotFound,
    find_interpreter,
    interpreter_mounts,
    parse_interpreter_setting,
)

RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_the_setting_comes_first_and_is_checked_to_be_that_version(tmp_path: Path) -> None:
    found = find_interpreter(
        RUNNING, configured={RUNNING: sys.executable}, pyenv_root=tmp_path / "none"
    )
    assert found.found_by == "setting"
    assert found.executable == Path(sys.executable).resolve()
    assert found.prefix == Path(sys.base_prefix).resolve()
    with pytest.raises(InterpreterNotFound, match="is not a working Python 3.2 interpreter"):
        find_interpreter("3.2", configured={"3.2": sys.executable}, pyenv_root=tmp_path)


def test_pyenv_versions_are_found_and_ones_that_do_not_run_are_passed_over(
    tmp_path: Path,
) -> None:
    # A pyenv layout whose "interpreters" are links to the running one.
    for name in (f"{RUNNING}.1", f"{RUNNING}.10", f"{RUNNING}.9"):
        bin_dir = tmp_path / "versions" / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / f"python{RUNNING}").symlink_to(sys.executable)
    (tmp_path / "versions" / f"{RUNNING}.10" / "bin" / f"python{RUNNING}").unlink()
    (tmp_path / "versions" / f"{RUNNING}.10" / "bin" / f"python{RUNNING}").write_text("broken")
    found = find_interpreter(RUNNING, pyenv_root=tmp_path, uv=Path("/nonexistent/uv"))
    assert (found.found_by, found.version) == ("pyenv", RUNNING)
    assert found.executable == Path(sys.executable).resolve()


def test_a_missing_version_says_where_it_looked_and_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(InterpreterNotFound) as caught:
        find_interpreter("3.1", pyenv_root=tmp_path / "pyenv")
    message = str(caught.value)
    assert "Python 3.1 is not installed on this worker" in message
    assert f"pyenv ({tmp_path / 'pyenv'}/versions)" in message
    assert "uv python install 3.1" in message
    assert "MARLIN_PYTHON_INTERPRETERS='3.1=/path/to/bin/python3.1'" in message
    with pytest.raises(InterpreterNotFound, match="give major.minor"):
        find_interpreter("3", pyenv_root=tmp_path)


def test_interpreters_outside_usr_are_mounted_at_their_own_path_read_only() -> None:
    found = find_interpreter(RUNNING, configured={RUNNING: sys.executable})
    mounts = interpreter_mounts(found)
    if found.prefix.is_relative_to("/usr"):
        assert mounts == []
    else:
        assert [(m.source, m.target, m.writable) for m in mounts] == [
            (found.prefix, str(found.prefix), False)
        ]


def test_the_setting_is_parsed_with_its_mistakes_named() -> None:
    assert parse_interpreter_setting(" 3.9=/opt/py39/bin/python3.9 , 3.8=/p/python3.8,") == {
        "3.9": "/opt/py39/bin/python3.9",
        "3.8": "/p/python3.8",
    }
    with pytest.raises(ValueError, match="'3.9:/opt/py' should be VERSION=/absolute/path"):
        parse_interpreter_setting("3.9:/opt/py")
    with pytest.raises(ValueError, match="should be VERSION=/absolute/path"):
        parse_interpreter_setting("3.9=relative/python")
