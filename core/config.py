"""The providers and models Netra serves, from netra.yaml (with ${ENV} expansion) or from provider keys alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from core.settings import Settings

ProviderKind = Literal["openai", "azure", "anthropic"]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
COMMON_MODELS: dict[str, tuple[str, ...]] = {
    "openai": (
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o3-mini", "o4-mini",
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "text-embedding-3-small", "text-embedding-3-large",
    ),
    "anthropic": ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4-0"),
}


class ConfigError(ValueError):
    """The configuration file is missing, malformed or refers to an unknown provider."""


class PriceOverride(BaseModel):
    """USD per million tokens, overriding the shipped price table for one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None


class ProviderConfig(BaseModel):
    """One upstream account: its kind, where it lives and the credential Netra uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: ProviderKind
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        return value or None

    @property
    def resolved_base_url(self) -> str:
        """The base URL, the provider's public one by default."""
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind == "azure":
            raise ConfigError(f"provider {self.name}: kind azure needs a base_url")
        return DEFAULT_BASE_URLS[self.kind]


class ModelConfig(BaseModel):
    """A model name clients may ask for, and where it is served."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    provider: str
    upstream: str | None = None
    price: PriceOverride | None = None

    @property
    def upstream_name(self) -> str:
        """The model (or Azure deployment) name sent upstream."""
        return self.upstream or self.name


class GatewayConfig(BaseModel):
    """Providers and models, validated together."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()

    def model_named(self, name: str) -> ModelConfig | None:
        """The configured model with this public name."""
        return next((m for m in self.models if m.name == name), None)

    def provider_named(self, name: str) -> ProviderConfig:
        """The provider with this name."""
        return next(p for p in self.providers if p.name == name)


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """Replace ${NAME} and ${NAME:-default} with values from env."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None:
            if default is None:
                return ""
            return default
        return value

    return _ENV_REF.sub(repl, text)


def parse_config(text: str, env: Mapping[str, str]) -> GatewayConfig:
    """Parse YAML text into a validated config."""
    try:
        raw = yaml.safe_load(expand_env(text, env)) or {}
        config = GatewayConfig.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    _check_references(config)
    return config


def _check_references(config: GatewayConfig) -> None:
    names = {p.name for p in config.providers}
    if len(names) != len(config.providers):
        raise ConfigError("provider names must be unique")
    seen: set[str] = set()
    for model in config.models:
        if model.provider not in names:
            raise ConfigError(f"model {model.name}: unknown provider {model.provider!r}")
        if model.name in seen:
            raise ConfigError(f"model {model.name} is declared twice")
        seen.add(model.name)


def default_config(settings: Settings) -> GatewayConfig:
    """With no file: each provider whose key is set, with its common models."""
    keys = {"openai": settings.openai_api_key, "anthropic": settings.anthropic_api_key}
    providers = tuple(
        ProviderConfig(name=kind, kind=kind, api_key=key)  # type: ignore[arg-type]
        for kind, key in keys.items()
        if key is not None and key.get_secret_value()
    )
    models = tuple(ModelConfig(name=m, provider=p.name) for p in providers for m in COMMON_MODELS[p.kind])
    return GatewayConfig(providers=providers, models=models)


def load_config(settings: Settings, env: Mapping[str, str]) -> GatewayConfig:
    """The config file named by the settings, or the key-only default."""
    path: Path | None = settings.resolved_config_path
    if path is None:
        return default_config(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse_config(text, env)
