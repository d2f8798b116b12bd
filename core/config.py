"""The providers and models Netra serves, from netra.yaml (with ${ENV} expansion) or from provider keys alone."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from core.config_env import UnsetCredential, expand_env
from core.config_messages import ConfigProblem, located, validation_problem, yaml_message
from core.settings import Settings

log = logging.getLogger("netra.config")
ProviderKind = Literal["openai", "azure", "anthropic"]

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
    # Configured model names tried in order when this one fails before its answer starts (429, 5xx, timeouts).
    fallbacks: tuple[str, ...] = ()

    @property
    def upstream_name(self) -> str:
        """The model (or Azure deployment) name sent upstream."""
        return self.upstream or self.name


class GatewayConfig(BaseModel):
    """Providers and models, validated together."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()
    # Models the file names but Netra does not serve, with why (their provider's credential is unset).
    _withheld: dict[str, str] = PrivateAttr(default_factory=dict)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per provider left out, naming the file, line and variable."""
        return tuple(self._warnings)

    def withheld_reason(self, model: str) -> str | None:
        """Why a model named in the file is not served, or None."""
        return self._withheld.get(model)

    def model_named(self, name: str) -> ModelConfig | None:
        """The configured model with this public name (its first deployment)."""
        return next((m for m in self.models if m.name == name), None)

    def deployments_of(self, name: str) -> tuple[ModelConfig, ...]:
        """Every deployment of a model name: each entry of the file with that name, in file order."""
        return tuple(m for m in self.models if m.name == name)

    def fallbacks_of(self, name: str) -> tuple[str, ...]:
        """The model's own fallbacks (the same on each of its deployments)."""
        first = self.model_named(name)
        return first.fallbacks if first is not None else ()


def _read_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its plain value."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_message(source, exc)) from exc
    finally:
        loader.dispose()


def parse_config(text: str, env: Mapping[str, str], source: str = "netra.yaml") -> GatewayConfig:
    """Parse YAML text into a validated config; a mistake is one ConfigError line naming file, line and field."""
    root, raw = _read_yaml(text, source)
    unset: list[UnsetCredential] = []
    try:
        config = _validate(expand_env(_empty_sections(raw), env, unset))
        _check_references(config, {u.provider_index for u in unset})
    except ConfigProblem as problem:
        raise ConfigError(located(source, root, problem)) from None
    return _withhold(config, unset, lambda problem: located(source, root, problem))


def _withhold(
    config: GatewayConfig, unset: list[UnsetCredential], locate: Callable[[ConfigProblem], str]
) -> GatewayConfig:
    """The config without the providers whose credential is unset (and their models): never call one without it."""
    lacking: dict[str, UnsetCredential] = {}
    for u in unset:
        lacking.setdefault(config.providers[u.provider_index].name, u)
    if not lacking:
        return config
    kept = GatewayConfig(
        providers=tuple(p for p in config.providers if p.name not in lacking),
        models=tuple(m for m in config.models if m.provider not in lacking),
    )
    for provider, first in lacking.items():
        models = [m.name for m in config.models if m.provider == provider]
        why = locate(ConfigProblem(first.loc, (
            f"${{{first.name}}} is not set in the environment (or is empty), so provider {provider} and its models "
            f"({', '.join(models) or 'none'}) are not served; set it and restart, or write ${{{first.name}:-}} "
            "if it needs no key"
        )))
        kept._warnings.append(why)
        kept._withheld.update(dict.fromkeys(models, why))
    return kept


def _empty_sections(raw: Any) -> Any:
    """An empty file is an empty config, and an empty `providers:` or `models:` an empty list."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {key: [] if key in ("providers", "models") and value is None else value for key, value in raw.items()}
    return raw


def _validate(raw: Any) -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problem = validation_problem(errors[0], _MODELS_AT)
        if len(errors) > 1:
            problem.message += f" (and {len(errors) - 1} more)"
        raise problem from None


def _check_references(config: GatewayConfig, withheld: set[int]) -> None:
    seen: set[str] = set()
    for i, provider in enumerate(config.providers):
        if provider.name in seen:
            raise ConfigProblem(("providers", i, "name"), f"{provider.name!r} is declared twice")
        seen.add(provider.name)
        if (problem := _base_url_problem(provider)) is not None:
            raise ConfigProblem(("providers", i, "base_url"), problem)
        if i not in withheld and (problem := _credential_problem(provider)) is not None:
            raise ConfigProblem(("providers", i), problem)
    _check_models(config, seen)


def _check_models(config: GatewayConfig, providers: set[str]) -> None:
    """Each model on a declared provider; a name may repeat (deployments), never with the same provider and upstream."""
    deployments: set[tuple[str, str, str]] = set()
    for i, model in enumerate(config.models):
        if model.provider not in providers:
            declared = ", ".join(sorted(providers)) or "none"
            raise ConfigProblem(("models", i, "provider"), f"{model.provider!r} is not a declared provider "
                                                           f"(declared: {declared})")
        deployment = (model.name, model.provider, model.upstream_name)
        if deployment in deployments:
            raise ConfigProblem(("models", i, "name"), f"{model.name!r} is declared twice on provider "
                                                       f"{model.provider!r} with the same upstream model")
        deployments.add(deployment)
        _check_fallbacks(config, i, model)


def _check_fallbacks(config: GatewayConfig, index: int, model: ModelConfig) -> None:
    """Fallbacks name other configured models, and every deployment of a name lists the same ones."""
    names = {m.name for m in config.models}
    for j, fallback in enumerate(model.fallbacks):
        if fallback == model.name or fallback not in names:
            why = "is the model itself" if fallback == model.name else "is not a configured model"
            raise ConfigProblem(("models", index, "fallbacks", j), f"{fallback!r} {why}")
    first = config.model_named(model.name)
    if first is not None and model.fallbacks and first.fallbacks != model.fallbacks:
        raise ConfigProblem(("models", index, "fallbacks"), f"deployments of {model.name!r} list different "
                                                            "fallbacks; list them on each the same, or on the first")


def _base_url_problem(provider: ProviderConfig) -> str | None:
    if provider.kind == "azure" and not provider.base_url:
        return "kind azure needs a base_url (https://RESOURCE.openai.azure.com/openai)"
    if provider.kind == "anthropic" and (provider.base_url or "").rstrip("/").endswith("/v1"):
        # Anthropic's SDK convention: the base is the host; requests go to {base_url}/v1/messages.
        return "an anthropic base_url is the host only, without /v1 (e.g. https://api.anthropic.com)"
    return None


def _credential_problem(provider: ProviderConfig) -> str | None:
    """A provider at its vendor's public endpoint with no credential would only ever be refused."""
    if provider.base_url or provider.api_key is not None:
        return None
    if {h.lower() for h in provider.headers} & {"authorization", "x-api-key", "api-key"}:
        return None
    variable = f"{provider.kind.upper()}_API_KEY"
    return (f"kind {provider.kind} at {DEFAULT_BASE_URLS[provider.kind]} needs an api_key "
            f"(for example api_key: \"${{{variable}}}\")")


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
    """The config in force, logging a warning for each provider left out for want of its credential."""
    config = read_config(settings, env)
    for warning in config.warnings:
        log.warning(warning)
    return config


def read_config(settings: Settings, env: Mapping[str, str]) -> GatewayConfig:
    """The config file named by the settings, or the key-only default."""
    path: Path | None = settings.resolved_config_path
    if path is None:
        return default_config(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return parse_config(text, env, str(path))


# Which model sits at which place of the file (list indexes left out), for "did you mean" on an unknown field.
_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): GatewayConfig, ("providers",): ProviderConfig, ("models",): ModelConfig, ("models", "price"): PriceOverride,
}
