"""The Dockerfile, compose.yaml and .dockerignore, checked without docker (this machine has no
daemon and no Docker Hub; docs/deploy.md): hadolint and the Compose specification's schema, run
offline from the packages in the test extra, then what a reviewer looks for in them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.containerfiles import (
    COMPOSE,
    DOCKERFILE,
    ROOT,
    apt_packages,
    compose,
    dockerignore_allowed,
    stages,
)

BIN = Path(sys.executable).parent
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
MARLIN_SERVICES = ("web", "worker")
# What a secret looks like in a variable's name; such a variable may only name a file.
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL", re.IGNORECASE)


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    # The schema vendored in check-jsonschema's wheel: nothing is downloaded.
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def runtime():
    return stages()[-1]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_would_catch_an_image_that_runs_as_root(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get install git\nUSER root\n")

    result = hadolint(careless)

    assert result.returncode == 1
    for rule in ("DL3007", "DL3008", "DL3002"):  # latest tag, unpinned apt, last user root
        assert rule in result.stdout, result.stdout


def test_compose_yaml_follows_the_compose_specification() -> None:
    result = validate_compose(COMPOSE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_would_catch_a_misspelled_healthcheck(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text()
    broken.write_text(text.replace("healthcheck:\n      test:", "healthcheck:\n      tset:", 1))

    result = validate_compose(broken)

    assert result.returncode == 1
    assert "tset" in result.stdout


def test_the_image_is_built_in_one_stage_and_runs_from_a_slim_python_in_another() -> None:
    build, final = stages()

    assert build.name == "build"
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim-\$\{DEBIAN_RELEASE\}", final.base)
    copied = [c.arguments for c in final.all("COPY")]
    assert copied == ["--from=build /opt/marlin /opt/marlin"]  # the venv, not the sources


def test_the_image_runs_as_a_numeric_user_that_is_not_root() -> None:
    user = runtime().all("USER")[-1].arguments

    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert gid.isdigit() and int(gid) != 0, user


def test_the_image_checks_its_health_on_healthz_with_the_probe_it_copies() -> None:
    build, final = stages()
    (healthcheck,) = final.all("HEALTHCHECK")

    assert healthcheck.exec_form() == ["python", "/opt/marlin/healthcheck.py", "/healthz"]
    assert "COPY scripts/healthcheck.py /opt/marlin/healthcheck.py" in [
        f"COPY {c.arguments}" for c in build.all("COPY")
    ]


def test_the_data_directory_is_a_volume() -> None:
    final = runtime()
    (volume,) = final.all("VOLUME")

    assert volume.exec_form() == [final.env()["MARLIN_DATA_DIR"]]


def test_the_entrypoint_and_every_compose_command_are_marlin_commands() -> None:
    final = runtime()
    entrypoint = final.all("ENTRYPOINT")[-1].exec_form()
    assert entrypoint == ["tini", "--", "marlin"]
    commands = [final.all("CMD")[-1].exec_form()]
    commands += [compose()["services"][name]["command"] for name in MARLIN_SERVICES]

    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "marlin", command[0], "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert result.returncode == 0, (command, result.stderr[-2000:])
        for option in (word for word in command[1:] if word.startswith("--")):
            assert option in result.stdout, (command, option)


def test_the_runtime_installs_what_system_deps_says_the_product_needs() -> None:
    """scripts/system-deps.sh is the host's list; the image needs all of it but the test tools."""
    script = (ROOT / "scripts" / "system-deps.sh").read_text()
    host = set(re.findall(r"need\+=\(([\w.+-]+)\)", script))
    test_only = {"chromium", "openssl", "npm"}  # Playwright, test certificates, agent CLIs
    assert test_only <= host, "system-deps.sh changed: sort its new packages here"

    installed = apt_packages(runtime())

    assert host - test_only <= installed, host - test_only - installed
    assert {"tini", "util-linux", "ca-certificates"} <= installed


def test_the_backup_tools_are_as_new_as_the_database_server() -> None:
    """pg_dump refuses a server newer than itself (docs/decisions/0015-backups-native-dumps.md);
    the runtime's postgresql-client is its Debian release's."""
    client_major = {"bookworm": 15, "trixie": 17}  # Debian's postgresql-client per release
    release = re.search(r"ARG DEBIAN_RELEASE=(\w+)", DOCKERFILE.read_text())
    assert release and release.group(1) in client_major
    server = re.fullmatch(r"postgres:(\d+)(\.\d+)?(-\w+)?", compose()["services"]["db"]["image"])
    assert server, compose()["services"]["db"]["image"]

    assert "postgresql-client" in apt_packages(runtime())
    assert int(server.group(1)) <= client_major[release.group(1)]


def test_every_service_has_a_healthcheck() -> None:
    services = compose()["services"]

    assert set(services) == {"web", "worker", "db", "redis"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name


def test_data_database_and_queue_live_on_named_volumes() -> None:
    spec = compose()
    services = spec["services"]
    data_dir = runtime().env()["MARLIN_DATA_DIR"]
    expected = {
        "web": f"marlin-data:{data_dir}",
        "worker": f"marlin-data:{data_dir}",
        "db": "postgres-data:/var/lib/postgresql/data",
        "redis": "redis-data:/data",
    }

    for name, mount in expected.items():
        assert mount in services[name]["volumes"], name
    assert set(spec["volumes"]) == {"marlin-data", "postgres-data", "redis-data"}


def test_no_secret_value_is_written_in_the_files() -> None:
    spec = compose()
    declared = spec["secrets"]
    for name, service in spec["services"].items():
        for variable, value in service.get("environment", {}).items():
            if SECRET_NAME.search(variable) and variable.startswith(("MARLIN_", "POSTGRES_")):
                assert variable.endswith("_FILE"), (name, variable)
                secret = value.removeprefix("/run/secrets/")
                assert secret in service["secrets"], (name, variable)
        for secret in service.get("secrets", []):
            assert declared[secret] == {"file": f"./secrets/{secret}"}, secret
    for text in (COMPOSE.read_text(), DOCKERFILE.read_text()):
        assert not re.search(r"://[^/\s@:]+:[^/\s@]+@", text), "a password in a URL"
    for stage in stages():
        for variable in stage.env():
            assert not SECRET_NAME.search(variable), variable


def test_only_the_worker_relaxes_confinement_and_only_for_the_sandbox() -> None:
    services = compose()["services"]

    assert sorted(services["worker"]["security_opt"]) == [
        "apparmor=unconfined",
        "seccomp=unconfined",
        "systempaths=unconfined",
    ]
    for name, service in services.items():
        assert not service.get("privileged"), name
        assert not service.get("cap_add"), name
        if name != "worker":
            assert "security_opt" not in service, name


def test_model_keys_reach_only_the_worker_and_the_database_is_not_published() -> None:
    services = compose()["services"]

    for name, service in services.items():
        keys = {s for s in service.get("secrets", []) if s.endswith("_api_key")}
        assert keys == ({"anthropic_api_key", "openai_api_key"} if name == "worker" else set())
    assert [p for name in ("db", "redis", "worker") for p in services[name].get("ports", [])] == []
    assert all(p.startswith("127.0.0.1:") for p in services["web"]["ports"])


def test_the_workers_answer_prometheus_on_the_compose_network_only() -> None:
    """Job durations and failures live in each worker process: the worker service serves them
    on a port exposed to the compose network (Prometheus's dns_sd finds every replica), never
    published on the host, with arguments `marlin worker` accepts."""
    from marlin.management.commands.worker import Command

    worker = compose()["services"]["worker"]
    command = worker["command"]
    options = Command().create_parser("marlin", "worker").parse_args(command[1:])
    # All interfaces of the container: the compose network, never the host (no ports).
    assert (options.metrics_port, options.metrics_address) == (9101, "0.0.0.0")  # noqa: S104
    assert worker["expose"] == ["9101"] and "ports" not in worker
    guide = DEPLOY_DOC.read_text()
    assert 'dns_sd_configs: [{names: ["worker"], type: A, port: 9101}]' in guide


def test_the_worker_starts_after_the_web_app_has_migrated() -> None:
    services = compose()["services"]

    assert services["worker"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert "--no-worker" in services["web"]["command"]
    for backing in ("db", "redis"):
        assert services["web"]["depends_on"][backing]["condition"] == "service_healthy"


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_secret() -> None:
    allowed = dockerignore_allowed()
    sources = {
        c.arguments.split()[0].rstrip("/")
        for stage in stages()
        for c in stage.all("COPY")
        if not c.arguments.startswith("--from")
    }
    sources = {s for c in sources for s in c.split()}

    assert sources <= allowed, sources - allowed
    for path in allowed:
        assert (ROOT / path).exists(), path
        assert not path.startswith(("secrets", ".git", ".venv", "var")), path


@pytest.mark.parametrize("path", ["Dockerfile", "compose.yaml", ".dockerignore"])
def test_the_files_are_where_docker_and_compose_look_for_them(path: str) -> None:
    assert (ROOT / path).is_file()
    assert path in DEPLOY_DOC.read_text()


def test_the_guide_names_every_variable_an_operator_can_set() -> None:
    sources = [ROOT / "marlin" / "settings.py", *(ROOT / "marlin" / "management").rglob("*.py")]
    read = {
        name
        for source in sources
        for name in re.findall(r"\b(MARLIN_[A-Z0-9_]*[A-Z0-9])\b", source.read_text())
    }
    assert "MARLIN_DATABASE_URL" in read

    documented = DEPLOY_DOC.read_text()
    # NAME_FILE is documented with NAME, marked "(*file*)".
    missing = {
        name
        for name in read
        if f"`{name}`" not in documented
        and not (name.endswith("_FILE") and f"`{name.removesuffix('_FILE')}`" in documented)
    }

    assert not missing, f"docs/deploy.md, Configuration: {sorted(missing)}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_guides_systemd_units_pass_systemd_analyze(tmp_path: Path) -> None:
    """The units of "Without containers", as written there but for the paths of this machine."""
    text = DEPLOY_DOC.read_text()
    units = {
        name: re.search(r"```ini\n(.*?)```", text[at:], re.S).group(1)  # the next one
        for name, at in (
            (m.group(1), m.end()) for m in re.finditer(r"`/etc/systemd/system/([\w@.-]+)`", text)
        )
    }
    assert set(units) == {"marlin-web.service", "marlin-worker@.service"}
    environment = tmp_path / "marlin.env"
    environment.write_text(f"MARLIN_DATA_DIR={tmp_path / 'data'}\n")
    for name, unit in units.items():
        for command in re.findall(r"^ExecStart=/opt/marlin/bin/marlin (.+)$", unit, re.M):
            assert command in ("serve --no-worker 127.0.0.1:8000", "worker"), command
        local = unit.replace("/opt/marlin/bin/marlin", str(BIN / "marlin"))
        local = local.replace("/etc/marlin/marlin.env", str(environment))
        path = tmp_path / name.replace("@.", "@1.")  # an instance of the template

        path.write_text(local)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
        )

        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr
