"""The demo data: what `make demo` loads must be complete, loadable twice, and usable."""

import pytest
from django.core.management import call_command

from marlin.accounts.models import User
from marlin.agents.models import Agent, Candidate
from marlin.demo.load import DEMO_PASSWORD, DEMO_USERS, load_demo
from marlin.review.models import Comparison
from marlin.tasks.models import Task, TaskStatus


@pytest.mark.slow
def test_the_demo_loads_once_and_is_ready_to_judge(db, client, capsys):
    call_command("demo", "--load-only")
    load_demo()  # a second load changes nothing
    assert "Demo logins" in capsys.readouterr().out
    assert Task.objects.count() == 4
    assert Task.objects.filter(status=TaskStatus.APPROVED).count() == 3
    assert {a.name for a in Agent.objects.all()} == {"atlas-coder", "corvid-agent"}
    assert Candidate.objects.count() == 6
    comparisons = Comparison.objects.all()
    assert comparisons.count() == 3
    assert all(c.run_a.agent_id != c.run_b.agent_id for c in comparisons)
    for spec in DEMO_USERS:
        user = User.objects.get(username=spec.username)
        assert set(spec.roles) <= set(user.role_names())
        assert client.login(username=spec.username, password=DEMO_PASSWORD)
    assert client.get("/").status_code == 200
