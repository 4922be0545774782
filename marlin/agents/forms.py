"""Agent definitions as users type them: settings validated per provider, and the page forms.

An agent's settings are JSON. Each provider has a pydantic model that says what it accepts; none
accepts a key in clear. A key is named (``api_key_env`` or ``api_key_file``) and read by the
worker when it runs the agent (``marlin.agents.secrets``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from django import forms
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from marlin.agents.models import Agent, Provider
from marlin.agents.trajectories import TrajectoryFormat
from marlin.sandbox.core import NETWORK_MODES
from marlin.sandbox.egress import MODEL_KINDS, ModelKind, parse_allow_entry

# Names that say "a secret is here" and values that look like one; api_key_env and api_key_file
# are the two allowed ways to name a key, so they are exempt.
_SECRET_NAME = re.compile(
    r"(api[_-]?key|secret|token|password|passwd|credential|authorization|bearer)", re.I
)
_ALLOWED_NAMES = {"api_key_env", "api_key_file", "max_tokens"}
_SECRET_VALUE = re.compile(
    r"(\bsk-[A-Za-z0-9_-]{8,}|\bsk-ant-[A-Za-z0-9_-]{8,}|\bgh[pousr]_[A-Za-z0-9]{16,}|\bAKIA[0-9A-Z]{16}\b"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}|\bBearer\s+\S{8,}|\bAIza[0-9A-Za-z_-]{20,})"
)


class SettingsError(ValueError):
    """Agent settings are not valid; the message names the field and what to do."""


def find_secret_like(data: Any, path: str = "") -> list[str]:
    """Where ``data`` seems to hold a secret in clear: a key named like one, or a value shaped
    like one. Returns readable locations such as ``extra_headers.Authorization``."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key) not in _ALLOWED_NAMES and _SECRET_NAME.search(str(key)):
                found.append(where)
            else:
                found.extend(find_secret_like(value, where))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(find_secret_like(value, f"{path}[{index}]"))
    elif isinstance(data, str) and _SECRET_VALUE.search(data):
        found.append(path or "value")
    return found


class LoopLimits(BaseModel):
    """Limits of the built-in agent loop (marlin.agents.loop.AgentLimits)."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(50, ge=1, le=1000)
    max_wall_seconds: float = Field(1800.0, gt=0, le=6 * 3600)
    max_tokens: int = Field(2_000_000, ge=1)
    max_cost_usd: float = Field(5.0, gt=0)
    command_timeout: float = Field(120.0, gt=0, le=3600)


class _KeyRef(BaseModel):
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_key_file: str | None = None

    @model_validator(mode="after")
    def _one_place_for_the_key(self) -> _KeyRef:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set api_key_env or api_key_file, not both")
        return self


class ApiSettings(_KeyRef):
    """openai and anthropic: a model behind an API, driven by the built-in loop."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, description="per model reply")
    extra_headers: dict[str, str] = Field(default_factory=dict)
    input_price_per_mtok: float = Field(0.0, ge=0)
    output_price_per_mtok: float = Field(0.0, ge=0)
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    system_prompt: str = ""
    limits: LoopLimits = Field(default_factory=LoopLimits)

    def provider_settings(self, provider: str) -> dict[str, Any]:
        """The fields marlin.agents.providers.ProviderSettings takes."""
        data = self.model_dump(exclude={"system_prompt", "limits"})
        return {"provider": provider, **data}


# Where each model API is unless the agent says otherwise.
DEFAULT_MODEL_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}
# What a command agent saved with the old `"network": true` may reach now, in proxy mode: the two
# model vendors' APIs (for CLIs that call them directly, through a gateway of their own) and the
# package registries (for agents that install what they need).
COMMAND_DEFAULT_ALLOW = (
    "api.anthropic.com:443",
    "api.openai.com:443",
    "pypi.org:443",
    "files.pythonhosted.org:443",
    "registry.npmjs.org:443",
)


class ModelApiSettings(_KeyRef):
    """A model API a command agent reaches through the credential endpoint (proxy mode): inside
    the sandbox it is at ANTHROPIC_BASE_URL / OPENAI_BASE_URL with a dummy token; the worker adds
    the key named here and counts tokens and cost."""

    model_config = ConfigDict(extra="forbid")
    kind: ModelKind
    base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    input_price_per_mtok: float = Field(0.0, ge=0)
    output_price_per_mtok: float = Field(0.0, ge=0)

    def real_base_url(self) -> str:
        return self.base_url or DEFAULT_MODEL_BASE_URLS[self.kind]


class CommandSettings(BaseModel):
    """A command-line agent (claude -p, codex exec, aider, a script) run in the sandbox."""

    model_config = ConfigDict(extra="forbid")
    argv: list[str] | str = Field(min_length=1)
    prompt_via: Literal["stdin", "file"] = "stdin"
    network: Literal["none", "proxy", "host"] = "none"
    allow: list[str] = Field(default_factory=list, description="host:port, proxy mode")
    model_apis: list[ModelApiSettings] = Field(default_factory=list)
    max_cost_usd: float | None = Field(None, gt=0)
    timeout: float = Field(1800.0, gt=0, le=6 * 3600)
    env: dict[str, str] = Field(default_factory=dict)
    # How to read the CLI's trajectory into steps (marlin.agents.trajectories) and, for CLIs
    # that write it to a file, where under the agent's home (/home/agent) that file is.
    trajectory: TrajectoryFormat = "text"
    trajectory_file: str = Field("", max_length=500)
    # The command for a follow-up turn that continues the CLI's own session ({session_id} is
    # the previous turn's); without it a follow-up gets the earlier transcript in its prompt.
    resume_argv: list[str] | str | None = None

    @field_validator("network", mode="before")
    @classmethod
    def _network_is_a_mode(cls, value: Any) -> Any:
        if isinstance(value, bool) or value not in NETWORK_MODES:
            raise ValueError(
                f"network is one of {', '.join(repr(m) for m in NETWORK_MODES)}, not "
                f"{json.dumps(value)}: 'proxy' reaches the hosts in \"allow\" and the model APIs "
                "in \"model_apis\" through Marlin's egress proxy (the old true), 'host' is the "
                "host's whole network (only in projects an administrator allowed it for)"
            )
        return value

    @field_validator("allow")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allow_entry(entry)
        return value

    @model_validator(mode="after")
    def _proxy_settings_need_proxy(self) -> CommandSettings:
        if self.network != "proxy" and (self.allow or self.model_apis or self.max_cost_usd):
            raise ValueError(
                'allow, model_apis and max_cost_usd take effect only with "network": "proxy"'
            )
        kinds = [api.kind for api in self.model_apis]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"model_apis: one entry per kind ({', '.join(MODEL_KINDS)})")
        return self

    @field_validator("trajectory_file")
    @classmethod
    def _trajectory_file_in_home(cls, value: str) -> str:
        relative = value.removeprefix("/home/agent/").removeprefix("~/")
        if relative.startswith("/") or ".." in relative.split("/"):
            raise ValueError("trajectory_file is a path under the agent's home (/home/agent/...)")
        return value

    @field_validator("argv", "resume_argv")
    @classmethod
    def _argv_has_text(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is None:
            return value
        if isinstance(value, list) and not all(isinstance(v, str) and v for v in value):
            raise ValueError("argv must be a list of non-empty strings, or one bash command line")
        if isinstance(value, str) and not value.strip():
            raise ValueError("argv must not be blank")
        return value


class ImportSettings(BaseModel):
    """A label for candidates produced elsewhere (prediction files)."""

    model_config = ConfigDict(extra="forbid")
    source: str = ""
    model_name_or_path: str = ""


SETTINGS_MODELS: dict[str, type[BaseModel]] = {
    Provider.OPENAI: ApiSettings,
    Provider.ANTHROPIC: ApiSettings,
    Provider.COMMAND: CommandSettings,
    Provider.IMPORT: ImportSettings,
}


def validate_agent_settings(provider: str, data: Any) -> dict[str, Any]:
    """Return the settings normalised (defaults filled in), or raise SettingsError."""
    model = SETTINGS_MODELS.get(provider)
    if model is None:
        raise SettingsError(
            f"Unknown provider {provider!r}; choose one of {sorted(SETTINGS_MODELS)}."
        )
    if not isinstance(data, dict):
        raise SettingsError('Settings must be a JSON object, e.g. {"model": "gpt-4o"}.')
    secrets = find_secret_like(data)
    if secrets:
        raise SettingsError(
            f"These settings look like a secret in clear: {', '.join(secrets)}. Never store keys "
            'in the database: put the key in the worker\'s environment and set "api_key_env" to '
            'the variable\'s name, or in a file and set "api_key_file" to its path.'
        )
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"Invalid {provider} settings: {problems}.") from None


def api_settings(agent: Agent) -> ApiSettings:
    return ApiSettings.model_validate(agent.settings)


def command_settings(agent: Agent) -> CommandSettings:
    return CommandSettings.model_validate(agent.settings)


SETTINGS_EXAMPLES = {
    Provider.OPENAI: {
        "model": "gpt-4o",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
    },
    Provider.ANTHROPIC: {
        "model": "claude-sonnet-4-5",
        "api_key_env": "ANTHROPIC_API_KEY",
        "max_tokens": 8192,
    },
    Provider.COMMAND: {
        "argv": ["claude", "-p"],
        "prompt_via": "stdin",
        "network": "proxy",
        "model_apis": [{"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}],
    },
    Provider.IMPORT: {"source": "SWE-bench predictions"},
}


class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    version_label = forms.CharField(max_length=100, initial="1")
    provider = forms.ChoiceField(choices=Provider.choices)
    settings = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono"}),
        help_text='JSON. Keys are named, never written here: "api_key_env": "OPENAI_API_KEY" or '
        '"api_key_file": "/run/secrets/openai". See docs/agents.md.',
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    is_active = forms.BooleanField(required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        text = data.get("settings")
        provider = data.get("provider")
        if text is None or provider is None:
            return data
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add_error(
                "settings",
                f"Settings must be JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            )
            return data
        try:
            data["settings"] = validate_agent_settings(provider, raw)
        except SettingsError as exc:
            self.add_error("settings", str(exc))
        return data


class AgentPoolForm(forms.Form):
    agents = forms.ModelMultipleChoiceField(
        queryset=Agent.objects.filter(is_active=True).exclude(provider=Provider.IMPORT),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Agents the pair sampler may choose for this project's tasks.",
    )
    reason = forms.CharField(required=False, max_length=500)


class StartRunForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.filter(is_active=True).exclude(provider=Provider.IMPORT)
    )
