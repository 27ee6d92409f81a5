import pytest

from partyflow.config import Home
from partyflow.llm.config import ProviderConfig, ProvidersConfig
from partyflow.llm.errors import ProviderConfigError

TOML = """
[engine]
cache = "classic"

[providers.deepseek]
type = "openai_compat"
base_url = "https://api.deepseek.com/v1"
api_key_env = "DEEPSEEK_API_KEY"
model = "deepseek-chat"
price_input_per_1k = 0.5
price_output_per_1k = 2.0
extra_headers = { X-Title = "partyflow" }

[providers.tiny]
type = "transformers"
path = "tiny-gpt"
"""


@pytest.fixture
def home(tmp_path):
    home = Home(tmp_path).ensure()
    home.config_file.write_text(TOML, encoding="utf-8")
    return home


def test_loads_the_providers_tables_of_the_home(home):
    providers = ProvidersConfig.load(home, environ={})
    assert sorted(providers) == ["deepseek", "tiny"]
    deepseek = providers.get("deepseek")
    assert (deepseek.type, deepseek.model, deepseek.timeout, deepseek.max_retries) == (
        "openai_compat", "deepseek-chat", 60.0, 2)
    assert deepseek.extra_headers == {"X-Title": "partyflow"}
    assert providers.get("tiny").model_path(home) == home.models / "llm" / "tiny-gpt"


def test_no_config_file_means_no_providers(tmp_path):
    assert len(ProvidersConfig.load(Home(tmp_path), environ={})) == 0


def test_unknown_provider_names_the_known_ones_and_the_fix(home):
    with pytest.raises(ProviderConfigError) as caught:
        ProvidersConfig.load(home, environ={}).get("openai")
    message = str(caught.value)
    assert "unknown provider 'openai'" in message and "deepseek, tiny" in message
    assert "[providers.openai]" in message and str(home.config_file) in message


def test_key_comes_from_the_named_variable_and_its_absence_is_explained(home):
    deepseek = ProvidersConfig.load(home, environ={}).get("deepseek")
    assert deepseek.api_key({"DEEPSEEK_API_KEY": "sk-1234567890abcdef"}) == "sk-1234567890abcdef"
    with pytest.raises(ProviderConfigError, match=r"\$DEEPSEEK_API_KEY is not set.*export DEEPSEEK_API_KEY="):
        deepseek.api_key({})


@pytest.mark.parametrize(("table", "message"), [
    ({"type": "anthropic"}, "type: Input should be 'openai_compat', 'transformers' or 'llamacpp'"),
    ({"type": "openai_compat", "timeout": "soon"}, "timeout: Input should be a valid number"),
    ({"type": "openai_compat", "timeout": 0}, "timeout: Input should be greater than 0"),
    ({"type": "openai_compat", "base_url": "api.example.com"}, "base_url: must be an http:// or https:// URL"),
    ({"type": "openai_compat", "modle": "x"}, "modle: is not a known field"),
    ({"type": "transformers"}, "needs 'path'"),
    ({"type": "llamacpp", "path": "m.gguf", "base_url": "http://x"}, "'base_url' does not apply"),
    ({"type": "openai_compat", "path": "x"}, "'path' applies only to local providers"),
])
def test_bad_fields_are_explained(table, message):
    with pytest.raises(ProviderConfigError, match="providers.p") as caught:
        ProvidersConfig.from_mapping({"providers": {"p": table}}, environ={})
    assert message in str(caught.value)


def test_keys_in_the_config_are_refused_without_being_echoed():
    table = {"type": "openai_compat", "api_key": "sk-very-secret-value-123456"}
    with pytest.raises(ProviderConfigError, match="keys do not belong in config files") as caught:
        ProvidersConfig.from_mapping({"providers": {"p": table}}, environ={})
    assert "very-secret" not in str(caught.value)


def test_bad_values_are_not_echoed():
    table = {"type": "openai_compat", "extra_headers": {"Authorization": ["Bearer sk-secret-in-a-list-999"]}}
    with pytest.raises(ProviderConfigError) as caught:
        ProvidersConfig.from_mapping({"providers": {"p": table}}, environ={})
    assert "secret-in-a-list" not in str(caught.value)


def test_environment_overrides_fields_and_defines_providers(home):
    environ = {
        "PARTYFLOW_PROVIDERS__DEEPSEEK__TIMEOUT": "12.5",
        "PARTYFLOW_PROVIDERS__DEEPSEEK__EXTRA_HEADERS": '{"X-Env": "1"}',
        "PARTYFLOW_PROVIDERS__LOCAL_VLLM__TYPE": "openai_compat",
        "PARTYFLOW_PROVIDERS__LOCAL_VLLM__BASE_URL": "http://127.0.0.1:8000/v1",
        "UNRELATED": "x",
    }
    providers = ProvidersConfig.load(home, environ=environ)
    assert providers.get("deepseek").timeout == 12.5
    assert providers.get("deepseek").extra_headers == {"X-Env": "1"}
    assert providers.get("deepseek").model == "deepseek-chat"
    assert providers.get("local_vllm").base_url == "http://127.0.0.1:8000/v1"


def test_environment_names_match_hyphenated_providers():
    raw = {"providers": {"my-server": {"type": "openai_compat"}}}
    providers = ProvidersConfig.from_mapping(raw, environ={"PARTYFLOW_PROVIDERS__MY_SERVER__MODEL": "m"})
    assert providers.get("my-server").model == "m"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PARTYFLOW_PROVIDERS__DEEPSEEK", "x", "must look like PARTYFLOW_PROVIDERS__<NAME>__<FIELD>"),
    ("PARTYFLOW_PROVIDERS__DEEPSEEK__EXTRA_HEADERS", "X-A: 1", "must be a JSON object"),
    ("PARTYFLOW_PROVIDERS__NEW__MODEL", "m", "type: Field required"),
    ("PARTYFLOW_PROVIDERS__DEEPSEEK__API_KEY", "sk-from-env-1234567890", "keys do not belong"),
])
def test_bad_environment_overrides_are_explained(home, variable, value, message):
    with pytest.raises(ProviderConfigError, match=message) as caught:
        ProvidersConfig.load(home, environ={variable: value})
    assert "sk-from-env" not in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path):
    home = Home(tmp_path)
    home.config_file.write_text("[providers.x\n", encoding="utf-8")
    with pytest.raises(ProviderConfigError, match="not valid TOML"):
        ProvidersConfig.load(home, environ={})


def test_cost_from_prices():
    config = ProviderConfig(name="p", type="openai_compat", price_input_per_1k=1.0, price_output_per_1k=3.0)
    assert config.cost(2000, 1000) == pytest.approx(5.0)
    assert ProviderConfig(name="p", type="openai_compat").cost(10, 10) is None


def test_model_paths_stay_in_the_models_directory(tmp_path):
    config = ProviderConfig(name="p", type="llamacpp", path="../../etc/passwd")
    with pytest.raises(ProviderConfigError, match="leaves"):
        config.model_path(Home(tmp_path))
    assert ProviderConfig(name="p", type="llamacpp", path="m.gguf").model_path(Home(tmp_path)) == (
        tmp_path.resolve() / "models" / "gguf" / "m.gguf")


def test_repr_hides_extra_headers():
    config = ProviderConfig(name="p", type="openai_compat", extra_headers={"X-Key": "hunter2-secret"})
    assert "hunter2" not in repr(config)
