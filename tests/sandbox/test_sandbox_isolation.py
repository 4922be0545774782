"""What a sandboxed command can see and reach: only its workspace, /usr and a few /etc files."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.sandbox import WORKSPACE_PATH, Mount, SandboxError, run

PY = "/usr/bin/python3"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on the host's loopback, standing in for PostgreSQL or Redis."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def connect_script(port: int) -> list[str]:
    code = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n"
    )
    return [PY, "-c", code]


def test_it_runs_in_the_workspace_and_writes_there(workspace: Path) -> None:
    result = run(["sh", "-c", "pwd; echo made > made.txt"], workdir=workspace)

    assert result.ok, result
    assert result.stdout.strip() == WORKSPACE_PATH
    assert (workspace / "made.txt").read_text() == "made\n"


def test_it_refuses_writes_outside_the_workspace(workspace: Path) -> None:
    targets = ["/usr/evil", "/etc/evil", "/evil", "/opt/evil", "/bin/evil", "/proc/evil"]
    script = "; ".join(f"(echo x > {t}) 2>/dev/null && echo WROTE {t}" for t in targets)

    result = run(["sh", "-c", script + "; echo done"], workdir=workspace)

    assert result.stdout.strip() == "done", result.stdout
    for target in targets:
        assert not Path(target).exists()


def test_its_tmp_is_private_to_the_run(workspace: Path, tmp_path: Path) -> None:
    marker = f"marlin-private-tmp-{os.getpid()}-{tmp_path.name}"

    result = run(["sh", "-c", f"echo x > /tmp/{marker} && ls /tmp"], workdir=workspace)

    assert result.ok, result
    assert marker in result.stdout
    assert not Path("/tmp", marker).exists()


def test_it_cannot_read_the_hosts_shadow_file(workspace: Path) -> None:
    assert Path("/etc/shadow").exists(), "the host should have /etc/shadow for this test"

    result = run(["cat", "/etc/shadow"], workdir=workspace)

    assert result.returncode != 0
    assert "root:" not in result.stdout
    assert "No such file" in result.stderr


def test_it_cannot_read_a_data_directory_outside_the_workspace(
    workspace: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "fake-data-dir"
    data_dir.mkdir()
    (data_dir / "secret_key").write_text("s3cr3t-value")

    result = run(
        ["sh", "-c", f"cat {data_dir}/secret_key; ls {tmp_path}; ls /root /work /home"],
        workdir=workspace,
    )

    assert "s3cr3t-value" not in result.stdout
    assert result.returncode != 0
    assert "No such file" in result.stderr


def test_it_hides_host_directories_that_hold_secrets(workspace: Path) -> None:
    script = (
        "for p in /root /home /work /var/run/postgresql /run /var /etc/shadow "
        "/etc/ssl/private /sys /etc/ssh; do [ -e $p ] && echo VISIBLE $p; done; "
        "ls /etc; echo done"
    )

    result = run(["sh", "-c", script], workdir=workspace)

    assert "VISIBLE" not in result.stdout, result.stdout
    assert "passwd" in result.stdout  # a synthetic one, see the next assertion
    passwd = run(["cat", "/etc/passwd"], workdir=workspace).stdout
    assert "root" not in passwd and passwd.startswith("marlin:")


def test_it_runs_as_an_unprivileged_user_without_capabilities(workspace: Path) -> None:
    result = run(["sh", "-c", "id -u; grep CapEff /proc/self/status"], workdir=workspace)

    uid, caps = result.stdout.split("\n", 1)
    assert uid == "1000"
    assert caps.split()[1] == "0000000000000000"


def test_it_cannot_reach_the_database_port_on_the_host(workspace: Path) -> None:
    host_can_connect = True
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        host_can_connect = False

    result = run(connect_script(5432), workdir=workspace)

    assert result.stdout.startswith("refused"), result
    if not host_can_connect:
        pytest.skip("nothing listens on 5432 here; the host listener test covers the rest")


def test_it_cannot_reach_a_host_service_without_network(
    workspace: Path, host_listener: int
) -> None:
    result = run(connect_script(host_listener), workdir=workspace)

    assert result.stdout.startswith("refused"), result


def test_its_loopback_is_its_own_without_network(workspace: Path) -> None:
    code = (
        "import socket\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "client = socket.create_connection(server.getsockname())\n"
        "peer, _ = server.accept()\n"
        "client.sendall(b'ping')\n"
        "print(peer.recv(4).decode())\n"
    )

    result = run([PY, "-c", code], workdir=workspace)

    assert result.stdout.strip() == "ping", result
    interfaces = run(["cat", "/proc/net/dev"], workdir=workspace).stdout
    assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


def test_it_reaches_the_host_network_only_when_allowed(workspace: Path, host_listener: int) -> None:
    result = run(connect_script(host_listener), workdir=workspace, network="host")

    assert result.stdout.strip() == "connected", result


def test_it_does_not_leak_the_hosts_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARLIN_SECRET", "do-not-leak-me")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")

    result = run(["env"], workdir=workspace, env={"GREETING": "hello"})

    assert "do-not-leak" not in result.stdout
    variables = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert variables["GREETING"] == "hello"
    assert variables["HOME"] == "/tmp"
    assert variables["PATH"].startswith("/env/bin:/opt/marlin-tools/bin:")
    assert set(variables) <= {"GREETING", "HOME", "PATH", "LANG", "PWD", "_", "SHLVL"}


def test_it_mounts_extra_directories_read_only_unless_writable(
    workspace: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input.txt").write_text("from the host")
    out = tmp_path / "out"
    out.mkdir()

    result = run(
        ["sh", "-c", "cat /in/input.txt; echo x > /in/evil; echo y > /out/result.txt"],
        workdir=workspace,
        mounts=[Mount(shared, "/in"), Mount(out, "/out", writable=True)],
    )

    assert result.stdout == "from the host"
    assert "Read-only file system" in result.stderr
    assert not (shared / "evil").exists()
    assert (out / "result.txt").read_text() == "y\n"


def test_it_rejects_mounts_that_would_hide_the_sandbox(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="would hide"):
        run(["true"], workdir=workspace, mounts=[Mount(tmp_path, "/proc")])
    with pytest.raises(SandboxError, match="does not exist"):
        run(["true"], workdir=workspace, mounts=[Mount(tmp_path / "missing", "/data")])
    with pytest.raises(SandboxError, match="absolute path"):
        run(["true"], workdir=workspace, mounts=[Mount(tmp_path, "/a/../etc")])


def test_python_from_the_host_distribution_works_inside(workspace: Path) -> None:
    result = run([PY, "-c", "import sys, ssl, json; print(sys.version_info[0])"], workdir=workspace)

    assert result.ok, result
    assert result.stdout.strip() == "3"
    assert sys.platform == "linux"
