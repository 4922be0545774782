"""Setup builds reach the package registries their project lists, through the egress proxy, and
nothing else: `pip install` from a fake index works, another host is refused, both logged."""

from __future__ import annotations

import pytest

from marlin.sandbox import addresses
from marlin.tasks.jobs import build_environment, environment_for
from tests.checks.scenario import demo_task
from tests.fakes.package_index import FakePackageIndex

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_setup_installs_from_the_projects_registry_and_reaches_nothing_else(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pypi.test is the project's registry (a mirror the administrator named as internal, since
    # it answers on loopback here); other.test is a public name nobody listed.
    table = {"pypi.test": ["127.0.0.1"], "other.test": ["140.82.112.3"]}
    monkeypatch.setattr(addresses, "resolve_host", lambda host: table[host])
    settings.EGRESS_INTERNAL_HOSTS = ["pypi.test"]
    with FakePackageIndex({"tinypkg": "VALUE = 42\n"}) as index:
        setup = (
            f"python3 -m pip install --no-cache-dir --disable-pip-version-check "
            f"--trusted-host pypi.test --index-url http://pypi.test:{index.port}/simple/ "
            "--target /env/site tinypkg && "
            "PYTHONPATH=/env/site python3 -c 'import tinypkg; print(\"value\", tinypkg.VALUE)' && "
            'python3 -c "import urllib.request\n'
            "try: urllib.request.urlopen('http://other.test/', timeout=10)\n"
            "except Exception as exc: print('other.test:', exc)\""
        )
        task = demo_task(checks=[], setup_command=setup, allow_setup_network=True)
        task.project.package_registries = [f"pypi.test:{index.port}"]
        task.project.save(update_fields=["package_registries"])

        status = build_environment.call(environment_for(task).pk)
        asked = list(index.requests)

    log = environment_for(task).log
    assert status == "ready", log
    assert "value 42" in log
    assert "other.test: HTTP Error 403" in log
    assert asked == ["/simple/tinypkg/", "/files/tinypkg-1.0-py3-none-any.whl"]
    assert f"[network] allowed http pypi.test:{index.port}" in log
    assert "[network] REFUSED http other.test:80: refused: other.test:80 is not on" in log
