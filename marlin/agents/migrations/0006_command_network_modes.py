"""Command agents' "network": true (the host's whole network) becomes "network": "proxy" with the
command provider's default allow list (the model vendors' APIs and the package registries);
"network": false becomes "none". The reverse maps "proxy" and "host" back to true."""

from django.db import migrations

# A copy, not an import: a migration must keep meaning what it meant when it was written.
COMMAND_DEFAULT_ALLOW = [
    "api.anthropic.com:443",
    "api.openai.com:443",
    "pypi.org:443",
    "files.pythonhosted.org:443",
    "registry.npmjs.org:443",
]


def forwards(apps, schema_editor):
    Agent = apps.get_model("agents", "Agent")
    for agent in Agent.objects.filter(provider="command"):
        settings = dict(agent.settings or {})
        network = settings.get("network")
        if network is True:
            settings["network"] = "proxy"
            settings.setdefault("allow", list(COMMAND_DEFAULT_ALLOW))
        elif network is False:
            settings["network"] = "none"
        else:
            continue
        agent.settings = settings
        agent.save(update_fields=["settings"])


def backwards(apps, schema_editor):
    Agent = apps.get_model("agents", "Agent")
    for agent in Agent.objects.filter(provider="command"):
        settings = dict(agent.settings or {})
        network = settings.get("network")
        if not isinstance(network, str):
            continue
        settings["network"] = network != "none"
        for name in ("allow", "model_apis", "max_cost_usd"):
            settings.pop(name, None)
        agent.settings = settings
        agent.save(update_fields=["settings"])


class Migration(migrations.Migration):
    dependencies = [("agents", "0005_turn_network_log")]

    operations = [migrations.RunPython(forwards, backwards)]
