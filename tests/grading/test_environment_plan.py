"""The setup script for an environment spec: which SWE-bench pre_install steps are refused, in
what order things are installed, and that the script really runs (bash -n) for every spec."""

from __future__ import annotations

import json
import subprocess
from importlib.resources import files

import pytest

from marlin.grading.environment import plan_setup, unsupported_reason
from marlin.grading.spec import EnvironmentSpec

SPECS = json.loads(files("marlin.grading").joinpath("swebench_specs.json").read_text())["specs"]
ALL = [
    (repo, version, spec) for repo, versions in SPECS.items() for version, spec in versions.items()
]


@pytest.mark.parametrize(
    ("command", "refused"),
    [
        ("apt-get update && apt-get install -y locales", True),
        ("apt-get -y update && DEBIAN_FRONTEND=noninteractive apt-get install -y ffmpeg", True),
        ("echo 'en_US UTF-8' > /etc/locale.gen", True),
        ("locale-gen en_US.UTF-8", True),
        ("conda install -y numpy", True),
        ("sudo make install", True),
        ("sed -i 's/>=>=/>=/' setup.cfg", False),
        ('QHULL_TAR="/tmp/qhull-2020-src-8.0.2.tgz"', False),
        ("pip install apt-repo-tools", False),  # a package name is not the tool
        ("echo done > build/log.txt", False),
    ],
)
def test_steps_that_need_the_system_are_refused_and_others_run(command: str, refused: bool) -> None:
    assert bool(unsupported_reason(command)) is refused


def test_every_swebench_spec_gives_a_script_bash_accepts_and_names_what_it_leaves_out() -> None:
    refused = 0
    for repo, version, raw in ALL:
        spec = EnvironmentSpec.model_validate(raw)
        plan = plan_setup(spec, "", python="/usr/bin/python3", uv="/opt/marlin-uv/uv", seed=True)
        checked = subprocess.run(["bash", "-n"], input=plan.script, text=True, capture_output=True)
        assert checked.returncode == 0, (repo, version, checked.stderr)
        for step in spec.pre_install:
            reason = unsupported_reason(step)
            assert (f"pre_install `{step}`: {reason}" in plan.unsupported) is bool(reason)
            assert (step in plan.script.splitlines()) is not bool(reason)
        refused += len(plan.unsupported)
    assert refused > 0  # django, matplotlib, pylint, pyvista and sphinx ask for apt-get


def test_the_order_is_pre_install_venv_packages_pip_packages_install_then_setup() -> None:
    spec = EnvironmentSpec(
        python="3.9",
        pre_install=["sed -i 's/a/b/' setup.cfg"],
        packages="numpy scipy",
        pip_packages=["pytest==7.4.0"],
        install="python -m pip install -e .",
    )
    script = plan_setup(
        spec, "make generated", python="/py/bin/python3.9", uv="/opt/marlin-uv/uv", seed=False
    ).script
    order = [
        "sed -i 's/a/b/' setup.cfg",
        "/opt/marlin-uv/uv venv --allow-existing --python /py/bin/python3.9 /env",
        "python -m ensurepip",
        "/opt/marlin-uv/uv pip install numpy scipy",
        "/opt/marlin-uv/uv pip install pytest==7.4.0",
        "python -m pip install -e .",
        "make generated",
    ]
    positions = [script.index(step) for step in order]
    assert positions == sorted(positions)
    assert "--seed" not in script  # no network: pip comes from the interpreter's ensurepip


def test_a_conda_environment_file_and_a_missing_requirements_text_are_reported() -> None:
    conda = plan_setup(
        EnvironmentSpec(packages="environment.yml"), "", python="p", uv="uv", seed=True
    )
    assert conda.unsupported == ["packages `environment.yml`: a conda environment needs conda"]
    bare = plan_setup(
        EnvironmentSpec(packages="requirements.txt"), "", python="p", uv="uv", seed=True
    )
    assert "without the requirements text" in bare.unsupported[0]
    given = plan_setup(
        EnvironmentSpec(packages="requirements.txt", requirements="flask==2.0\n# it's\n"),
        "",
        python="p",
        uv="uv",
        seed=True,
    )
    assert given.unsupported == []
    assert "uv pip install -r /tmp/marlin-requirements.txt" in given.script


def test_without_a_spec_the_setup_command_runs_alone() -> None:
    plan = plan_setup(None, "pip install -e .", python="p", uv="uv", seed=False)
    assert (plan.script, plan.unsupported) == ("pip install -e .", [])
