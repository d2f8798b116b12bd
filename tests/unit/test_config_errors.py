"""A mistake in netra.yaml is one line naming the file, the line, the field's place and what to change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config import ConfigError, load_config, parse_config
from core.settings import Settings

OPENAI = "providers:\n  - {name: openai, kind: openai, api_key: sk-test-key-123}\n"

TWO = OPENAI + "  - {name: other, kind: openai, base_url: http://127.0.0.1:9/v1}\n"
MISTAKES = [
    pytest.param(
        OPENAI + "models:\n  - {name: m, provider: openai, fallbacks: [n]}\n",
        "netra.yaml:4: models[0].fallbacks[0]: 'n' is not a configured model",
        id="unknown-fallback",
    ),
    pytest.param(
        OPENAI + "models:\n  - {name: m, provider: openai, fallbacks: [m]}\n",
        "netra.yaml:4: models[0].fallbacks[0]: 'm' is the model itself",
        id="self-fallback",
    ),
    pytest.param(
        TWO + "models:\n  - {name: m, provider: openai, fallbacks: [n]}\n  - {name: n, provider: openai}\n"
        "  - {name: m, provider: other, fallbacks: [x]}\n  - {name: x, provider: other}\n",
        "netra.yaml:7: models[2].fallbacks: deployments of 'm' list different fallbacks; list them on each the same, "
        "or on the first",
        id="fallbacks-differ",
    ),
    pytest.param(
        "providers:\n  - {name: a, kind: openai}\n  - {name: b, kind: opnai}\n",
        "netra.yaml:3: providers[1].kind: 'opnai' is not one of openai, azure, anthropic",
        id="unknown-kind",
    ),
    pytest.param(
        "providers:\n  - name: a\n    kind: openai\n   base_url: x\n",
        "netra.yaml:4:4: YAML syntax error: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection that starts at line 2)",
        id="yaml-indentation",
    ),
    pytest.param(
        "models: [1, 2\nproviders: []\n",
        "netra.yaml:2:10: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts at line 1)",
        id="yaml-unclosed-list",
    ),
    pytest.param(
        "providers:\n  - name: a\n    kind: openai\n    base: http://x/v1\n",
        "netra.yaml:4: providers[0].base: unknown field; did you mean base_url?",
        id="mistyped-field",
    ),
    pytest.param(
        "provider:\n  - {name: a, kind: openai}\n",
        "netra.yaml:1: provider: unknown field; did you mean providers?",
        id="mistyped-section",
    ),
    pytest.param(
        "providers:\n  - {name: a, kind: openai, colour: blue}\n",
        "netra.yaml:2: providers[0].colour: unknown field; "
        "the fields here are name, kind, base_url, api_key, api_version, headers",
        id="unknown-field",
    ),
    pytest.param(
        "providers:\n  - {kind: openai}\n",
        "netra.yaml:2: providers[0]: name is required",
        id="missing-name",
    ),
    pytest.param(
        OPENAI + "models:\n  - name: m\n    provider: openai\n    price: {input: cheap}\n",
        "netra.yaml:6: models[0].price.input: should be a valid number, unable to parse string as a number "
        "(got 'cheap')",
        id="wrong-type",
    ),
    pytest.param(
        OPENAI + "models:\n  - {name: m, provider: opneai}\n",
        "netra.yaml:4: models[0].provider: 'opneai' is not a declared provider (declared: openai)",
        id="unknown-provider",
    ),
    pytest.param(
        OPENAI + "models:\n  - {name: m, provider: openai}\n  - {name: m, provider: openai}\n",
        "netra.yaml:5: models[1].name: 'm' is declared twice on provider 'openai' with the same upstream model",
        id="duplicate-model",
    ),
    pytest.param(
        "providers:\n  - {name: c, kind: anthropic, base_url: 'https://api.anthropic.com/v1'}\n",
        "netra.yaml:2: providers[0].base_url: an anthropic base_url is the host only, without /v1 "
        "(e.g. https://api.anthropic.com)",
        id="anthropic-v1",
    ),
    pytest.param(
        "providers:\n  - {name: z, kind: azure}\n",
        "netra.yaml:2: providers[0].base_url: kind azure needs a base_url (https://RESOURCE.openai.azure.com/openai)",
        id="azure-without-url",
    ),
    pytest.param(
        "providers:\n  - {name: o, kind: openai, base_url: 'http://127.0.0.1:8000/v1'}\n"
        "  - name: c\n    kind: anthropic\n",
        "netra.yaml:3: providers[1]: kind anthropic at https://api.anthropic.com needs an api_key "
        '(for example api_key: "${ANTHROPIC_API_KEY}")',
        id="public-endpoint-without-key",
    ),
    pytest.param(
        "- openai\n",
        "netra.yaml:1: the file should be a mapping with `providers:` and `models:`",
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES)
def test_a_mistake_is_one_line_with_its_place(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, {}, "netra.yaml")
    assert str(err.value) == message


def test_a_provider_whose_key_variable_is_unset_is_not_served() -> None:
    text = (
        "providers:\n  - {name: o, kind: openai, api_key: '${OPENAI_KEY}'}\n"
        "  - {name: c, kind: anthropic, headers: {x-api-key: '${ANT_KEY}'}}\n"
        "models:\n  - {name: m, provider: o}\n  - {name: claude, provider: c}\n  - {name: haiku, provider: c}\n"
    )
    config = parse_config(text, {"OPENAI_KEY": "sk-set-key-123", "ANT_KEY": ""}, "netra.yaml")
    assert [p.name for p in config.providers] == ["o"] and [m.name for m in config.models] == ["m"]
    why = (
        "netra.yaml:3: providers[1].headers.x-api-key: ${ANT_KEY} is not set in the environment (or is empty), "
        "so provider c and its models (claude, haiku) are not served; set it and restart, or write ${ANT_KEY:-} "
        "if it needs no key"
    )
    assert config.warnings == (why,)
    assert config.withheld_reason("claude") == why and config.withheld_reason("m") is None


def test_the_warning_is_logged_once_at_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "netra.yaml"
    path.write_text("providers:\n  - {name: o, kind: openai, api_key: '${OPENAI_KEY}'}\n")
    settings = Settings(config=path, _env_file=None)  # type: ignore[call-arg]
    with caplog.at_level(logging.WARNING, logger="netra.config"):
        assert load_config(settings, {}).providers == ()
    assert [r.getMessage().split(": ${")[0] for r in caplog.records] == [f"{path}:2: providers[0].api_key"]


def test_an_explicit_empty_default_and_a_commented_variable_are_accepted() -> None:
    text = (
        "# api_key: ${UNSET_IN_A_COMMENT}\nproviders:\n"
        "  - {name: local, kind: openai, base_url: 'http://127.0.0.1:8000/v1', api_key: '${LOCAL_KEY:-}'}\n"
    )
    config = parse_config(text, {}, "netra.yaml")
    assert config.providers[0].api_key is None


def test_a_variable_is_substituted_verbatim_whatever_it_contains() -> None:
    # Expanded after parsing: a value with YAML syntax in it stays one string.
    text = "providers:\n  - {name: o, kind: openai, api_key: '${KEY}', headers: {x-org: '${ORG:-acme}'}}\n"
    config = parse_config(text, {"KEY": "sk-a: b # c'd"}, "netra.yaml")
    key = config.providers[0].api_key
    assert key is not None and key.get_secret_value() == "sk-a: b # c'd"
    assert config.providers[0].headers == {"x-org": "acme"}


def test_a_credential_is_never_echoed_in_a_message() -> None:
    text = "providers:\n  - {name: o, kind: openai, api_key: [sk-secret-value-123]}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, {}, "netra.yaml")
    assert str(err.value) == "netra.yaml:2: providers[0].api_key: should be a valid string"


def test_the_file_name_is_the_one_configured(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("providers:\n  - {name: a, kind: opnai}\n")
    settings = Settings(config=path, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as err:
        load_config(settings, {})
    assert str(err.value).startswith(f"{path}:2: providers[0].kind: 'opnai'")


def test_empty_sections_are_empty() -> None:
    config = parse_config("providers:\nmodels:\n", {}, "netra.yaml")
    assert config.providers == () and config.models == ()


def test_an_unset_variable_elsewhere_is_named_too() -> None:
    text = "providers:\n  - {name: local, kind: openai, base_url: '${LOCAL_URL}/v1'}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, {}, "netra.yaml")
    assert str(err.value) == (
        "netra.yaml:2: providers[0].base_url: ${LOCAL_URL} is not set in the environment (or is empty); "
        "export LOCAL_URL, or write ${LOCAL_URL:-} for an empty value"
    )


def test_a_model_listed_on_two_providers_has_two_deployments_and_their_fallbacks() -> None:
    text = TWO + (
        "models:\n  - {name: m, provider: openai, fallbacks: [n]}\n  - {name: m, provider: other}\n"
        "  - {name: n, provider: other}\n"
    )
    config = parse_config(text, {}, "netra.yaml")
    assert [d.provider for d in config.deployments_of("m")] == ["openai", "other"]
    assert (config.fallbacks_of("m"), config.fallbacks_of("n")) == (("n",), ())
