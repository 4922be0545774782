"""The setup script for an environment spec (EnvironmentSpec: a SWE-bench spec's fields, or an
author's): what runs in the sandbox, in the checkout, to build `/env`, and which steps cannot
run here and are reported instead of skipped in silence.

Order, as the SWE-bench harness builds its images: `pre_install` (in the checkout), a venv on
the spec's Python made by uv, the `packages` (a requirements text, or package names), the
`pip_packages`, the `install` command, then the task's own setup command. The sandbox has no
system package manager and a read-only system: steps that need one (apt-get, conda, locale-gen)
or write system files are left out and listed in `unsupported`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from marlin.grading.spec import EnvironmentSpec

# Package managers and system tools the sandbox does not have (or may not use).
_SYSTEM_TOOLS = (
    "apt-get",
    "apt",
    "aptitude",
    "dpkg",
    "add-apt-repository",
    "yum",
    "dnf",
    "rpm",
    "apk",
    "zypper",
    "pacman",
    "brew",
    "conda",
    "mamba",
    "micromamba",
    "locale-gen",
    "update-locale",
    "sudo",
)
_NEEDS_SYSTEM = re.compile(
    r"(?:^|[;&|(]\s*|\b(?:env|DEBIAN_FRONTEND=\S+)\s+)("
    + "|".join(re.escape(t) for t in _SYSTEM_TOOLS)
    + r")(?=\s|$)"
)
_WRITES_SYSTEM = re.compile(r">>?\s*/(?:etc|usr|var|opt|root|lib|bin|sbin)/")
VENV_PATH = "/env"
REQUIREMENTS_FILE = "/tmp/marlin-requirements.txt"  # noqa: S108 (inside the sandbox)


@dataclass
class SetupPlan:
    script: str
    unsupported: list[str] = field(default_factory=list)


def unsupported_reason(command: str) -> str:
    """Why a pre_install step cannot run in the sandbox, or "" when it can."""
    match = _NEEDS_SYSTEM.search(command)
    if match:
        return f"needs the system package manager or system tools ({match.group(1)})"
    if _WRITES_SYSTEM.search(command):
        return "writes system files, which are read-only in the sandbox"
    return ""


def plan_setup(
    spec: EnvironmentSpec | None,
    setup_command: str,
    *,
    python: str,
    uv: str,
    seed: bool,
) -> SetupPlan:
    """The bash script that builds the environment. `python` is the interpreter's path as the
    sandbox sees it, `uv` the uv binary's; `seed` puts pip, setuptools and wheel in the venv
    with uv (it needs the package registry), otherwise pip comes from the interpreter's own
    ensurepip, where it has one."""
    if spec is None:
        return SetupPlan(script=setup_command)
    plan = SetupPlan(script="")
    lines = [
        "set -eo pipefail",
        # uv's cache lives and dies with the build (/tmp is the sandbox's own): a build never
        # reads what another build's untrusted setup.py left in a shared cache.
        "export UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1 "
        # (System certificates: a registry mirror may use a local CA. Fewer parallel
        # downloads than the egress proxy's open-connection limit. Byte-compiled at install,
        # as pip does: a package compiled later, under a test suite's `-W error`, can fail on
        # its own old warnings, e.g. blinker 1.4's invalid escape under flask 2.0's tests.)
        "UV_LINK_MODE=copy UV_NO_PROGRESS=1 UV_SYSTEM_CERTS=1 UV_CONCURRENT_DOWNLOADS=8 "
        "UV_COMPILE_BYTECODE=1",
    ]
    for command in spec.pre_install:
        reason = unsupported_reason(command)
        if reason:
            plan.unsupported.append(f"pre_install `{command}`: {reason}")
            lines.append(_say(f"not run (unsupported here): {command}"))
            continue
        lines += [_say(f"pre_install: {command}"), command]
    venv = [uv, "venv", "--allow-existing", "--python", python, VENV_PATH]
    if seed:
        venv.insert(2, "--seed")
    lines += [_say("creating the venv"), shlex.join(venv)]
    lines += [f"export VIRTUAL_ENV={VENV_PATH} PATH={VENV_PATH}/bin:$PATH"]
    if not seed:
        lines.append(
            "python -m ensurepip --default-pip >/dev/null 2>&1 || "
            + _say("no pip in the venv: the interpreter has no ensurepip")
        )
    packages = spec.packages.strip()
    if packages == "environment.yml":
        plan.unsupported.append("packages `environment.yml`: a conda environment needs conda")
        lines.append(_say("not run (unsupported here): conda environment.yml"))
    elif packages == "requirements.txt":
        if spec.requirements.strip():
            lines += [
                _say("installing the requirements"),
                f"printf '%s\\n' {shlex.quote(spec.requirements)} > {REQUIREMENTS_FILE}",
                shlex.join([uv, "pip", "install", "-r", REQUIREMENTS_FILE]),
            ]
        else:
            plan.unsupported.append(
                "packages `requirements.txt` without the requirements text: nothing to install"
            )
    elif packages:
        install = shlex.join([uv, "pip", "install", *packages.split()])
        lines += [_say("installing packages"), install]
    if spec.pip_packages:
        lines += [
            _say("installing pip_packages"),
            shlex.join([uv, "pip", "install", *spec.pip_packages]),
        ]
    if spec.install.strip():
        lines += [_say(f"install: {spec.install.strip()}"), spec.install.strip()]
    if setup_command.strip():
        lines += [_say("setup command"), setup_command.strip()]
    plan.script = "\n".join(lines) + "\n"
    return plan


def _say(text: str) -> str:
    return "echo " + shlex.quote(f"[marlin] {text}")
