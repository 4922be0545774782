"""Command agents and the network: `proxy` mode with model APIs through the credential endpoint
(tokens and cost on the candidate, the cost limit, the network log on the run page), `host` mode
only where an administrator allowed it, settings that say what is wrong, old `"network": true`
settings migrated, and a run whose proxy failed left for the lease sweep."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from marlin.agents import actions
from marlin.agents.forms import COMMAND_DEFAULT_ALLOW, SettingsError, validate_agent_settings
from marlin.agents.jobs import recover_expired_runs
from marlin.agents.models import Provider, Run, RunStatus, Turn, TurnStatus
from marlin.devtools.model_server import FakeModelServer, Reply
from marlin.sandbox import egress
from marlin.tasks.models import Task
from tests.agents.test_runs import demo_task, run_until_done  # noqa: F401 (a fixture)
from tests.conftest import PASSWORD

KEY_ENV = "MARLIN_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-api03-the-real-key-stays-in-the-worker"

# A stand-in for a CLI: asks its model (through ANTHROPIC_BASE_URL, with the dummy token it was
# given), writes the answer into NOTES.md, and prints the variables it saw.
ASKING_AGENT = r"""
import json, os, sys, urllib.request
prompt = sys.stdin.read()
request = urllib.request.Request(
    os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    data=json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]}).encode(),
    method="POST",
    headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01",
             "content-type": "application/json"})
reply = json.loads(urllib.request.urlopen(request, timeout=20).read())
open("NOTES.md", "w").write(reply["content"][0]["text"] + "\n")
print("env:", sorted(k for k in os.environ if "ANTHROPIC" in k or "PROXY" in k))
"""


def proxy_agent(actor, server: FakeModelServer, **extra):  # type: ignore[no-untyped-def]
    settings = {
        "argv": ["python3", "-c", ASKING_AGENT],
        "timeout": 60,
        "network": "proxy",
        "allow": ["pypi.org:443"],
        "model_apis": [
            {
                "kind": "anthropic",
                "base_url": server.anthropic_base_url,
                "api_key_env": KEY_ENV,
                "input_price_per_mtok": 3,
                "output_price_per_mtok": 15,
            }
        ],
        **extra,
    }
    return actions.do_create_agent(
        actor, name="asking", provider=Provider.COMMAND, settings=settings
    )


@pytest.mark.slow
def test_a_command_agent_calls_its_model_through_the_proxy_and_gets_cost_columns(
    demo_task: Task,  # noqa: F811
    dave,
    erin,
    client,
    monkeypatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeModelServer(
        [Reply(text="hello from the model", input_tokens=2000, output_tokens=300)]
    ) as server:
        agent = proxy_agent(dave, server)
        run = actions.do_start_run(dave, demo_task, agent)
        turn = run_until_done(run.turns.get())
        seen = server.requests

    assert turn.status == TurnStatus.DONE, turn.error
    assert "+hello from the model" in turn.candidate.patch
    assert [r.headers["x-api-key"] for r in seen] == [KEY]
    candidate = turn.candidate
    assert (candidate.input_tokens, candidate.output_tokens) == (2000, 300)
    assert candidate.cost_usd == Decimal("0.010500")  # 2000 * 3 + 300 * 15 per million
    [entry] = turn.network_log
    assert entry["kind"] == "model" and entry["allowed"] and entry["host"] == "127.0.0.1"
    output = turn.steps.get().content["output"]
    assert "ANTHROPIC_API_KEY" in output and KEY not in output
    client.login(username="dave", password=PASSWORD)
    page = client.get(f"/agents/runs/{run.pk}/").content.decode()
    assert "Network log" in page and "<code>127.0.0.1</code>" in page
    assert KEY not in page


@pytest.mark.slow
def test_the_cost_limit_ends_the_turn_with_limit_cost(
    demo_task: Task,  # noqa: F811
    dave,
    monkeypatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    looping = (
        "import json, os, urllib.request\n"
        "open('NOTES.md', 'w').write('started\\n')\n"
        "for i in range(100):\n"
        "    request = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',\n"
        "        data=b'{}', method='POST',\n"
        "        headers={'x-api-key': os.environ['ANTHROPIC_API_KEY']})\n"
        "    urllib.request.urlopen(request, timeout=10).read()\n"
    )
    script = [Reply(text="more", input_tokens=10_000, output_tokens=1000) for _ in range(100)]
    with FakeModelServer(script) as server:
        agent = proxy_agent(dave, server, argv=["python3", "-c", looping], max_cost_usd=0.1)
        run = actions.do_start_run(dave, demo_task, agent)
        turn = run_until_done(run.turns.get())
        asked = len(server.requests)

    # Each call costs $0.045: the third crosses $0.10 and the run is stopped there.
    assert asked == 3
    assert turn.status == TurnStatus.DONE and turn.exit_status == "limit:cost"
    assert turn.candidate.cost_usd == Decimal("0.135000")


def test_host_network_needs_the_projects_permission(
    demo_task: Task,  # noqa: F811
    dave,
    erin,
    client,
) -> None:
    agent = actions.do_create_agent(
        dave,
        name="wide",
        provider=Provider.COMMAND,
        settings={"argv": ["true"], "network": "host"},
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run_until_done(run.turns.get())

    assert turn.status == TurnStatus.FAILED
    assert "does not allow" in turn.error and '"network": "proxy"' in turn.error
    client.login(username="dave", password=PASSWORD)
    for url in (f"/agents/{agent.pk}/", f"/agents/runs/{run.pk}/"):
        assert "Host network." in client.get(url).content.decode()
    demo_task.project.allow_host_network = True
    demo_task.project.save(update_fields=["allow_host_network"])
    assert "Host network allowed." in client.get(f"/tasks/{demo_task.pk}/").content.decode()


def test_a_missing_model_key_fails_the_turn_saying_where_it_was_looked_for(
    demo_task: Task,  # noqa: F811
    dave,
    monkeypatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeModelServer([]) as server:
        agent = proxy_agent(dave, server)
        run = actions.do_start_run(dave, demo_task, agent)
        turn = run_until_done(run.turns.get())
        asked = len(server.requests)

    assert turn.status == TurnStatus.FAILED
    assert f"model_apis (anthropic): Environment variable {KEY_ENV} is not set" in turn.error
    assert asked == 0 and not turn.steps.exists()


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"argv": "x", "network": True}, "network is one of 'none', 'proxy', 'host', not true"),
        ({"argv": "x", "network": "lan"}, "network is one of"),
        ({"argv": "x", "allow": ["pypi.org:443"]}, 'only with "network": "proxy"'),
        ({"argv": "x", "network": "proxy", "allow": ["pypi.org"]}, "must be host:port"),
        (
            {"argv": "x", "network": "proxy", "model_apis": [{"kind": "gemini"}]},
            "model_apis.0.kind",
        ),
        (
            {
                "argv": "x",
                "network": "proxy",
                "model_apis": [{"kind": "openai", "api_key": "sk-abcdefghijklmnop"}],
            },
            "look like a secret in clear",
        ),
    ],
)
def test_bad_network_settings_say_what_is_wrong(given: dict, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem.replace("(", r"\(")):
        validate_agent_settings("command", given)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_old_network_true_settings_become_proxy_with_the_default_allow_list(dave) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("agents", "0005_turn_network_log")])
    old_apps = executor.loader.project_state([("agents", "0005_turn_network_log")]).apps
    Agent = old_apps.get_model("agents", "Agent")
    wide = Agent.objects.create(
        name="claude", provider="command", settings={"argv": ["claude", "-p"], "network": True}
    )
    closed = Agent.objects.create(
        name="script", provider="command", settings={"argv": ["true"], "network": False}
    )
    api = Agent.objects.create(name="gpt", provider="openai", settings={"model": "gpt-4o"})
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    from marlin.agents.models import Agent as CurrentAgent

    assert CurrentAgent.objects.get(pk=wide.pk).settings == {
        "argv": ["claude", "-p"],
        "network": "proxy",
        "allow": list(COMMAND_DEFAULT_ALLOW),
    }
    assert CurrentAgent.objects.get(pk=closed.pk).settings == {"argv": ["true"], "network": "none"}
    assert CurrentAgent.objects.get(pk=api.pk).settings == {"model": "gpt-4o"}
    validate_agent_settings("command", CurrentAgent.objects.get(pk=wide.pk).settings)


@pytest.mark.slow
def test_a_run_whose_proxy_failed_says_why_and_is_queued_again_by_the_sweep(
    demo_task: Task,  # noqa: F811
    dave,
    monkeypatch,
) -> None:
    # The agent waits while the test stops the worker's egress loop under it.
    agent = actions.do_create_agent(
        dave,
        name="waiting",
        provider=Provider.COMMAND,
        settings={
            "argv": "sleep 3; echo done > NOTES.md",
            "timeout": 60,
            "network": "proxy",
            "allow": ["pypi.org:443"],
        },
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run.turns.get()

    def crash_the_proxy() -> None:
        time.sleep(1.5)
        loop = egress.event_loop()
        loop.call_soon_threadsafe(loop.stop)

    crasher = threading.Thread(target=crash_the_proxy)
    crasher.start()
    run_until_done(turn)
    crasher.join()

    run.refresh_from_db()
    assert turn.status == TurnStatus.RUNNING
    assert "egress proxy failed" in run.error and "tried again" in run.error
    assert recover_expired_runs() == 1
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert run_until_done(turn).status == TurnStatus.DONE
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING
    assert Turn.objects.get(pk=turn.pk).candidate.patch.count("+done") == 1
