"""What the image does when it runs, exercised here without docker: the package installed from
the wheel its build stage makes serves the app and passes the image's health probe; the
sandbox probe a worker's container runs; the secrets script compose.yaml relies on; and the
sandbox as the image's non-root user (uid 10001), which is how a worker runs in the container.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from marlin.sandbox import run
from marlin.sandbox.workspace import (
    base_mounts,
    create_base,
    create_layer,
    remove_workspace,
    sandbox_view,
)
from tests.deploy.containerfiles import ROOT, compose, dockerignore_allowed, stages
from tests.management.test_serve import free_port, wait_until
from tests.sandbox.test_workspace import git

pytestmark = pytest.mark.slow

IMAGE_UID = 10001
HEALTHCHECK = ROOT / "scripts" / "healthcheck.py"
SECRETS_SCRIPT = ROOT / "scripts" / "compose-secrets.sh"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes owners and user ids (root)")


def probe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def build_context(dest: Path) -> Path:
    """The files the Dockerfile copies into its build stage, as .dockerignore lets them in."""
    for source in sorted(dockerignore_allowed()):
        target = dest / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / source, target)
    return dest


def test_the_wheel_the_image_installs_serves_the_app_and_passes_the_health_probe(
    tmp_path: Path,
) -> None:
    build = stages()[0]
    assert any("pip wheel --no-deps" in r.arguments for r in build.all("RUN"))
    context = build_context(tmp_path / "context")
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # As the build stage does, offline: the build backend and dependencies are the venv's.
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), "."],
        cwd=context,
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("marlin-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "database_url").write_text(f"sqlite:///{tmp_path / 'marlin.sqlite3'}\n")
    (secrets / "secret_key").write_text("k" * 50)
    (secrets / "audit_key").write_text("a" * 64)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # the wheel's marlin, not this checkout's
        "MARLIN_DATA_DIR": str(tmp_path / "data"),
        "MARLIN_DATABASE_URL_FILE": str(secrets / "database_url"),
        "MARLIN_SECRET_KEY_FILE": str(secrets / "secret_key"),
        "MARLIN_AUDIT_KEY_FILE": str(secrets / "audit_key"),
        "MARLIN_ALLOWED_HOSTS": "localhost,marlin.example.org",
        "MARLIN_LISTEN": f"127.0.0.1:{port}",
        "MARLIN_TASKS_BACKEND": "database",
    }
    env.pop("MARLIN_DATABASE_URL", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "marlin", "serve", "--no-worker", "--workers", "1"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: probe("/healthz", env=env).returncode == 0 or server.poll() is not None,
            180,
            "the health probe never passed",
        )
        assert server.poll() is None, log.read_text()[-3000:]
        assert f"{site}/marlin/" in log.read_text() or _imported_from(site, env)

        # The login page's template and its static files come from the wheel.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/account/login/", headers={"Host": "localhost"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            page = response.read().decode()
        stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page)
        assert stylesheet, page[:2000]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{stylesheet.group(1)}", headers={"Host": "localhost"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200
        assert (tmp_path / "marlin.sqlite3").exists()  # the URL came from the file

        missing = probe("/no-such-page", env=env)
        assert missing.returncode == 1
        assert "answered 404" in missing.stderr
    finally:
        server.terminate()
        server.wait(timeout=60)
    down = probe("/healthz", env=env)
    assert down.returncode == 1
    assert "unhealthy: GET /healthz" in down.stderr and "failed" in down.stderr


def _imported_from(site: Path, env: dict[str, str]) -> bool:
    shown = subprocess.run(
        [sys.executable, "-c", "import marlin; print(marlin.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=site.parent,
        check=True,
    )
    return shown.stdout.strip() == str(site / "marlin" / "__init__.py")


def test_the_sandbox_probe_passes_where_bwrap_works_and_says_why_when_not(tmp_path: Path) -> None:
    healthy = probe("--sandbox", env=dict(os.environ))
    assert healthy.returncode == 0, healthy.stderr

    broken = probe("--sandbox", env={**os.environ, "MARLIN_BWRAP_PATH": "/bin/false"})

    assert broken.returncode == 1
    assert "unhealthy: bubblewrap at /bin/false cannot create a sandbox" in broken.stderr


@needs_root
def test_the_secrets_script_makes_private_files_and_never_replaces_one(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    first = subprocess.run(
        [str(SECRETS_SCRIPT), str(secrets)], capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    made = {p.name: p for p in secrets.iterdir()}
    assert set(made) == set(compose()["secrets"])  # every file compose.yaml mounts, no other
    for name, path in made.items():
        info = path.stat()
        assert info.st_mode & 0o777 == 0o400, name
        assert info.st_uid == (999 if name == "postgres_password" else IMAGE_UID), name
    password = made["postgres_password"].read_text()
    assert len(made["audit_key"].read_text()) == 64
    assert made["database_url"].read_text() == f"postgres://marlin:{password}@db:5432/marlin"
    assert made["anthropic_api_key"].read_text() == ""
    before = {name: path.read_bytes() for name, path in made.items()}

    (secrets / "secret_key").unlink()
    again = subprocess.run(
        [str(SECRETS_SCRIPT), str(secrets)], capture_output=True, text=True, timeout=60
    )

    assert again.returncode == 0, again.stderr
    assert f"kept     {secrets}/audit_key" in again.stdout
    for name, content in before.items():
        if name != "secret_key":
            assert (secrets / name).read_bytes() == content, name
    assert (secrets / "secret_key").read_bytes() != before["secret_key"]


@needs_root
def test_the_secrets_script_refuses_to_run_unprivileged_and_writes_nothing(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    tmp_path.chmod(0o777)

    refused = subprocess.run(
        ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
        + ["bash", str(SECRETS_SCRIPT), str(secrets)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert refused.returncode == 1
    assert "Run it as root" in refused.stderr
    assert not secrets.exists()


def as_user(uid: int, function: Callable[[], None]) -> tuple[int, str]:
    """Run `function` in a child process that dropped to `uid` (the interpreter stays loaded, so
    it need not be readable by that user); its exit code and, on failure, the traceback."""
    report = Path(f"/tmp/marlin-as-user-{os.getpid()}.txt")  # noqa: S108
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            function()
        except BaseException:
            code = 1
            try:
                report.write_text(traceback.format_exc())
            except OSError:
                pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    text = report.read_text() if report.exists() else ""
    report.unlink(missing_ok=True)
    return os.waitstatus_to_exitcode(status), text


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory of the image's user that it can reach (pytest's own are root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="marlin-uid-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)  # as root, whatever the user's sandbox left


@needs_root
def test_the_images_user_runs_a_check_in_a_layer_and_cleans_it_up(user_dir: Path) -> None:
    """A worker in the container is uid 10001, not root: bwrap makes its user namespace
    unprivileged, overlayfs leaves its work directory at mode 000 (root walks through that,
    10001 does not), and the sandbox's process limit falls back to RLIMIT_NPROC."""
    src = user_dir / "src"
    src.mkdir()
    (src / "core.py").write_text("x = 1\n")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "initial")
    git(user_dir, "clone", "-q", "--mirror", str(src), str(user_dir / "mirror.git"))
    commit = git(src, "rev-parse", "HEAD")
    subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(user_dir)], check=True)

    def check_in_a_layer() -> None:
        os.environ["HOME"] = str(user_dir)
        dest = user_dir / "env"
        tree = create_base(user_dir / "mirror.git", commit, dest)
        built = run(["sh", "-c", "echo built > out.txt"], workdir=tree, mounts=base_mounts(dest))
        assert built.ok, built.stderr
        layer = create_layer(dest, user_dir / "ws")
        view, mounts = sandbox_view(layer)
        checked = run(
            ["sh", "-c", "id -u; cat out.txt; echo mine > new.txt"], workdir=view, mounts=mounts
        )
        assert checked.ok, checked.stderr
        assert checked.stdout.split() == ["1000", "built"], checked.stdout
        remove_workspace(layer)
        assert list((user_dir / "ws").iterdir()) == []

    code, report = as_user(IMAGE_UID, check_in_a_layer)

    assert code == 0, report
