"""Write marlin/grading/swebench_specs.json from the official swebench 4.0.4 wheel.

swebench 5.x no longer ships the per-(repository, version) environment specs
(MAP_REPO_VERSION_TO_SPECS); 4.0.4 was the last release that did, and importing it pulls in
docker, datasets and modal at import time. So Marlin keeps the Python repositories' specs as
data, made once by this script from the wheel (docs/decisions/0004-swebench-specs.md):

    pip download --no-deps swebench==4.0.4 -d /tmp/swebench-wheel
    python scripts/swebench_specs.py /tmp/swebench-wheel/swebench-4.0.4-py3-none-any.whl

The wheel's constants module is plain data built with dict literals and comprehensions; it is
run in an empty namespace (it imports nothing).
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

MODULE = "swebench/harness/constants/python.py"
OUT = Path(__file__).resolve().parent.parent / "marlin" / "grading" / "swebench_specs.json"
FIELDS = (
    "python",
    "packages",
    "pip_packages",
    "pre_install",
    "install",
    "test_cmd",
    "eval_commands",
)


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(MODULE).decode()
        version = next(
            (
                n.split("-")[1].removesuffix(".dist-info")
                for n in archive.namelist()
                if n.endswith(".dist-info/METADATA")
            ),
            "",
        )
    namespace: dict[str, object] = {}
    exec(compile(source, MODULE, "exec"), namespace)  # noqa: S102  # the official wheel's data
    specs = namespace["MAP_REPO_VERSION_TO_SPECS_PY"]
    assert isinstance(specs, dict)
    data = {
        "source": f"swebench {version}, {MODULE} (MIT licence, SWE-bench authors)",
        "specs": {
            repo: {
                str(v): {k: spec[k] for k in FIELDS if k in spec}
                for v, spec in sorted(versions.items())
            }
            for repo, versions in sorted(specs.items())
            if repo != "swe-bench/humaneval"
        },
        "requirements_paths": namespace["MAP_REPO_TO_REQS_PATHS"],
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({sum(len(v) for v in data['specs'].values())} specs)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} SWEBENCH-4.0.4-WHEEL")
    sys.exit(main(sys.argv[1]))
