"""ModelMux 1.x config files and variables load unchanged, mapped onto 2.x providers and aliases."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from modelmux.config.load import LoadedConfig
from modelmux.config.problems import ConfigError
from modelmux.config.providers import VertexConfig
from modelmux.config.schema import Config
from modelmux.providers.base import ChatCall, Provider
from modelmux.routing.models import ModelIndex
from tests.config.helpers import load, write

SA = json.dumps({"type": "service_account", "project_id": "p", "client_email": "a@b"})
VERTEX = """
[vertex]
project = "my-project"
region = "europe-west1"
location = "europe-west1"
publisher = "anthropic"
model = "claude-sonnet-4@20250514"
"""


class Stub(Provider):
    type = "stub"

    async def complete(self, call: ChatCall) -> bytes:
        raise NotImplementedError

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError


def index(config: Config) -> ModelIndex:
    return ModelIndex([Stub(p.name, list(p.models)) for p in config.provider], config.model_aliases())


def url_for(config: Config, model: str, stream: bool = False) -> str:
    """The URL the 2.x vertex provider calls for a model name a client sends."""
    from modelmux.providers.vertex import vertex_origin, vertex_url

    provider, upstream = index(config).resolve(model)
    table = next(p for p in config.provider if p.name == provider.name)
    assert isinstance(table, VertexConfig)
    return vertex_url(vertex_origin(table.region, table.base_url), table.project, table.region,
                      upstream, stream)


def load_1x(home: Path, text: str, **environ: str) -> LoadedConfig:
    return load(home, write(home / "config.toml", text), environ=environ)


def test_a_full_1x_file(tmp_path: Path) -> None:
    loaded = load_1x(tmp_path, f"""
[server]
port = 8080
log_level = "debug"
enable_retries = true
max_retry_attempts = 5

[auth]
service_account_json = '{SA}'

[streaming]
mode = "standard"
buffer_size = 65536
chunk_timeout_ms = 5000
{VERTEX}""")
    config = loaded.config
    assert config.server.port == 8080 and config.server.host == "127.0.0.1"
    assert config.logging.level == "debug" and config.streaming.mode == "standard"
    (vertex,) = config.provider
    assert isinstance(vertex, VertexConfig)
    assert (vertex.name, vertex.project, vertex.region, vertex.base_url) == (
        "vertex", "my-project", "europe-west1", None)
    assert vertex.models == ["claude-sonnet-4@20250514"] and vertex.max_retries == 4
    assert vertex.credentials_json == SA
    assert config.model_aliases() == [("claude-sonnet-4", "vertex/claude-sonnet-4@20250514", False),
                                      ("*", "vertex/claude-sonnet-4@20250514", False)]
    assert any("1.x format" in w.message and "127.0.0.1" in w.message for w in loaded.warnings)


@pytest.mark.parametrize("tables", ["[server]\n[auth]\n[streaming]\n", ""])
def test_empty_or_absent_1x_tables(tmp_path: Path, tables: str) -> None:
    config = load_1x(tmp_path, tables + VERTEX).config
    assert config.server.port == 3000 and config.logging.level == "info"
    assert config.provider[0].max_retries == 2  # 1.x's 3 attempts


def test_project_id_and_model_id_aliases(tmp_path: Path) -> None:
    text = VERTEX.replace("project =", "project_id =").replace("model =", "model_id =")
    config = load_1x(tmp_path, text).config
    assert config.provider[0].project == "my-project"
    assert config.provider[0].models == ["claude-sonnet-4@20250514"]


@pytest.mark.parametrize(("server", "retries"), [
    ("enable_retries = false\nmax_retry_attempts = 5", 0),
    ("max_retry_attempts = 1", 0),
    ("max_retry_attempts = 4", 3),
    ("max_retry_attempts = 30", 10),
])
def test_retries_become_max_retries(tmp_path: Path, server: str, retries: int) -> None:
    loaded = load_1x(tmp_path, f"[server]\n{server}\n{VERTEX}")
    assert loaded.config.provider[0].max_retries == retries


def test_keys_1x_ignored_are_warnings_not_errors(tmp_path: Path) -> None:
    loaded = load_1x(tmp_path, f"[server]\nlog_level = \"warn\"\nshiny = 1\n[auth]\nstrategy = 'x'\n"
                     f"[llm_provider]\nproject_id = 'x'\n{VERTEX}url_typo = 'y'\n")
    ignored = [w.render() for w in loaded.warnings if "ignored (as in 1.x)" in w.message]
    assert len(ignored) == 4
    assert any("server.shiny" in w for w in ignored) and any("vertex.url_typo" in w for w in ignored)


def test_service_account_sources(tmp_path: Path) -> None:
    both = load_1x(tmp_path, f"[auth]\nservice_account_file = '/x.json'\n"
                   f"service_account_json = '{SA}'\n{VERTEX}")
    assert both.config.provider[0].credentials_json == SA
    assert any("the JSON wins" in w.message for w in both.warnings)
    dollar = load_1x(tmp_path, f"[auth]\nservice_account_file = '$KEYS/sa.json'\n{VERTEX}",
                     KEYS="/secrets")
    assert dollar.config.provider[0].credentials_file == "/secrets/sa.json"
    tilde = load_1x(tmp_path, f"[auth]\nservice_account_file = '~/sa.json'\n{VERTEX}")
    assert tilde.config.provider[0].credentials_file == str(tmp_path / "sa.json")
    env = load_1x(tmp_path, f"[auth]\nservice_account_file = '/file.json'\n{VERTEX}",
                  MODELMUX_AUTH_SERVICE_ACCOUNT_FILE="/env.json")
    assert env.config.provider[0].credentials_file == "/env.json"
    base64_key = load_1x(tmp_path, VERTEX, GCP_SERVICE_ACCOUNT_KEY="e30=")
    assert base64_key.config.provider[0].credentials_env == "GCP_SERVICE_ACCOUNT_KEY"
    file_wins = load_1x(tmp_path, f"[auth]\nservice_account_file = '/f.json'\n{VERTEX}",
                        GCP_SERVICE_ACCOUNT_KEY="e30=")
    assert file_wins.config.provider[0].credentials_file == "/f.json"


def test_worked_example_regional_entry(tmp_path: Path) -> None:
    config = load_1x(tmp_path, VERTEX + '[[vertex.models]]\nname = "sonnet"\n'
                     'model = "claude-sonnet@20241022"\n').config
    assert url_for(config, "sonnet") == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/my-project/locations/"
        "europe-west1/publishers/anthropic/models/claude-sonnet@20241022:rawPredict")


def test_worked_example_global_host(tmp_path: Path) -> None:
    text = VERTEX.replace('"europe-west1"', '"global"') + (
        '[[vertex.models]]\nname = "sonnet-4-6"\nmodel = "claude-sonnet-4-6@default"\n')
    url = url_for(load_1x(tmp_path, text).config, "sonnet-4-6")
    assert url == ("https://aiplatform.googleapis.com/v1/projects/my-project/locations/global/"
                   "publishers/anthropic/models/claude-sonnet-4-6@default:rawPredict")
    assert "global-aiplatform" not in url


def test_worked_example_two_entries_and_streaming(tmp_path: Path) -> None:
    config = load_1x(tmp_path, VERTEX + '[[vertex.models]]\nname = "claude-opus-4.7"\n'
                     'model = "claude-opus-4-7@default"\n[[vertex.models]]\nname = "claude-opus-4.8"\n'
                     'model = "claude-opus-4-8@default"\n').config
    assert url_for(config, "claude-opus-4.7").endswith("/models/claude-opus-4-7@default:rawPredict")
    assert url_for(config, "claude-opus-4.8", stream=True).endswith(
        "/models/claude-opus-4-8@default:streamRawPredict")


def test_worked_example_other_publishers_are_reported_not_served(tmp_path: Path) -> None:
    loaded = load_1x(tmp_path, VERTEX + '[[vertex.models]]\nname = "gemini"\npublisher = "google"\n'
                     'model = "gemini-2-flash@001"\n')
    assert any("publisher 'google' is not served" in w.message for w in loaded.warnings)
    assert loaded.config.provider[0].models == ["claude-sonnet-4@20250514"]


def test_worked_example_entry_with_its_own_url(tmp_path: Path) -> None:
    custom = "https://custom.example.com/v1/projects/p/locations/l/publishers/anthropic/models/my-model"
    config = load_1x(tmp_path, VERTEX + f'[[vertex.models]]\nname = "custom"\nmodel = "ignored"\n'
                     f'url = "{custom}:rawPredict"\n').config
    assert url_for(config, "custom") == custom + ":rawPredict"
    assert [p.base_url for p in config.provider] == [None, "https://custom.example.com"]


def test_worked_example_parent_url_and_global_region(tmp_path: Path) -> None:
    parent = ("https://aiplatform.googleapis.com/v1/projects/my-project/locations/global/publishers/"
              "anthropic/models/claude-sonnet-4@default")
    text = (f'[vertex]\nurl = "{parent}"\nregion = "global"\nlocation = "global"\n'
            'project = "my-project"\npublisher = "anthropic"\n'
            '[[vertex.models]]\nname = "claude-opus"\nmodel = "claude-opus-4@default"\n')
    config = load_1x(tmp_path, text).config
    url = url_for(config, "claude-opus")
    assert url.endswith("/models/claude-opus-4@default:rawPredict") and "sonnet" not in url
    assert url_for(config, "claude-sonnet-4") == parent + ":rawPredict"


def test_worked_example_names_ignore_case_and_unknown_names_get_the_default(tmp_path: Path) -> None:
    config = load_1x(tmp_path, VERTEX + '[[vertex.models]]\nname = "Sonnet"\n'
                     'model = "claude-sonnet@20241022"\n').config
    models = index(config)
    assert models.resolve("SONNET")[1] == "claude-sonnet@20241022"
    assert models.resolve("sonnet")[1] == "claude-sonnet@20241022"
    assert models.resolve("gpt-4o")[1] == "claude-sonnet-4@20250514"
    assert models.resolve("claude-sonnet-4")[1] == "claude-sonnet-4@20250514"
    assert [m for m, _ in models.public_models()][:2] == ["claude-sonnet-4", "Sonnet"]


def test_worked_example_env_only_global(tmp_path: Path) -> None:
    loaded = load(tmp_path, environ={
        "VERTEX_PROJECT": "p", "VERTEX_REGION": "global", "VERTEX_LOCATION": "global",
        "VERTEX_PUBLISHER": "anthropic", "VERTEX_MODEL_ID": "claude-sonnet-4@20250514",
        "GCP_SERVICE_ACCOUNT_KEY": "e30="})
    assert not loaded.defaulted
    url = url_for(loaded.config, "claude-sonnet-4")
    assert url.startswith("https://aiplatform.googleapis.com/") and url.endswith(":rawPredict")
    assert any("VERTEX_PROJECT" in (w.origin.name or "") for w in loaded.warnings if w.origin)


def test_entry_without_region_uses_the_parent_url_host(tmp_path: Path) -> None:
    parent = "http://127.0.0.1:9/v1/projects/p/locations/us-east5/publishers/anthropic/models/m@1"
    config = load_1x(tmp_path, f'[vertex]\nurl = "{parent}"\nproject = "p"\nlocation = "us-east5"\n'
                     'publisher = "anthropic"\n[[vertex.models]]\nname = "o"\nmodel = "o@2"\n').config
    assert url_for(config, "o") == ("http://127.0.0.1:9/v1/projects/p/locations/us-east5/publishers/"
                                    "anthropic/models/o@2:rawPredict")


def test_region_picks_the_host_location_the_path(tmp_path: Path) -> None:
    text = VERTEX.replace('location = "europe-west1"', 'location = "europe-west4"')
    assert url_for(load_1x(tmp_path, text).config, "claude-sonnet-4") == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/my-project/locations/"
        "europe-west4/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")


def test_precedence_of_the_default_model(tmp_path: Path) -> None:
    url = ("https://us-east5-aiplatform.googleapis.com/v1/projects/q/locations/us-east5/publishers/"
           "anthropic/models/from-url@1:streamRawPredict")
    env = {"LLM_URL": url.replace("from-url", "from-env"), "VERTEX_PROJECT": "e",
           "VERTEX_REGION": "r", "VERTEX_LOCATION": "r", "VERTEX_PUBLISHER": "anthropic",
           "VERTEX_MODEL_ID": "from-vertex-env@1"}
    with_url = load_1x(tmp_path, VERTEX + f'url = "{url}"\n', **env).config
    assert with_url.provider[0].models == ["from-url@1"]
    assert with_url.model_aliases()[0][0] == "claude-sonnet-4"  # [vertex] model names it
    fields = load_1x(tmp_path, VERTEX, **env).config
    assert fields.provider[0].models == ["from-env@1"]  # LLM_URL beats [vertex] fields
    env.pop("LLM_URL")
    assert load_1x(tmp_path, VERTEX, **env).config.provider[0].models == ["claude-sonnet-4@20250514"]


def test_display_name_variables(tmp_path: Path) -> None:
    named = load_1x(tmp_path, VERTEX, LLM_MODEL="m1", LLM_MODEL_DISPLAY_NAME="shown").config
    assert named.model_aliases()[0] == ("shown", "vertex/claude-sonnet-4@20250514", False)
    assert load_1x(tmp_path, VERTEX, LLM_MODEL="m1").config.model_aliases()[0][0] == "m1"


@pytest.mark.parametrize(("provider", "reason"), [
    ("openai_compatible", "was never implemented in 1.x"),
    ("mistral", "was never implemented in 1.x"),
    ("bedrock", "unknown provider 'bedrock'"),
])
def test_llm_provider_other_than_vertex(tmp_path: Path, provider: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_1x(tmp_path, VERTEX, LLM_PROVIDER=provider)


def test_incomplete_vertex_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_1x(tmp_path, '[server]\nport = 1\n[vertex]\nproject = "p"\n')
    assert f"{tmp_path / 'config.toml'}:3: vertex: no Vertex model configured" in str(info.value)


def test_bad_url_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_1x(tmp_path, '[vertex]\nurl = "https://example.com/nope"\n')
    assert f"{tmp_path / 'config.toml'}:2: vertex.url: expected a Vertex model URL" in str(info.value)


def test_1x_variables_are_ignored_when_the_config_has_providers(tmp_path: Path) -> None:
    loaded = load_1x(tmp_path, '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n',
                     LLM_URL="https://x/v1/projects/p/locations/l/publishers/anthropic/models/m")
    assert [p.name for p in loaded.config.provider] == ["m"]
    assert any("LLM_URL" in w.message for w in loaded.warnings)


def test_auth_alone_serves_vertex_providers_without_credentials(tmp_path: Path) -> None:
    config = load_1x(tmp_path, f"[auth]\nservice_account_json = '{SA}'\n"
                     '[[provider]]\nname = "v"\ntype = "vertex"\nproject = "p"\nregion = "global"\n'
                     'models = ["m"]\n').config
    assert config.provider[0].credentials_json == SA


def test_spec_config_test_env_only_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, environ={
        "MODELMUX_AUTH_SERVICE_ACCOUNT_JSON": SA, "VERTEX_PROJECT": "p", "VERTEX_REGION": "r",
        "VERTEX_LOCATION": "r", "VERTEX_PUBLISHER": "anthropic", "VERTEX_MODEL_ID": "m@1"})
    config = loaded.config
    assert (config.server.port, config.logging.level, config.streaming.mode) == (3000, "info", "auto")
    assert config.provider[0].credentials_json == SA
