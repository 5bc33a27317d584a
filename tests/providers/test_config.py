"""Provider tables in TOML: fields per type, unknown keys, ``${ENV}``, start-up checks, URLs."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest

from modelmux.config.load import ConfigError
from modelmux.config.providers import AnthropicConfig, OpenAICompatibleConfig, VertexConfig
from modelmux.config.schema import decode
from modelmux.providers.anthropic import AnthropicProvider
from modelmux.providers.env import expand_env
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.providers.registry import build_provider
from modelmux.providers.vertex import VertexProvider, vertex_origin, vertex_url
from modelmux.upstream import ConnectionPool

FULL = """
[[provider]]
name = "local"
type = "openai_compatible"
models = ["llama"]
base_url = "http://127.0.0.1:8000/v1"
api_key = "${MM_KEY}"
max_retries = 4
[provider.headers]
x-org = "acme"
[provider.timeouts]
connect = 2
first_byte = 30
read = 120.5

[[provider]]
name = "claude"
type = "anthropic"
models = ["claude-sonnet-4"]
api_key = "sk-ant"
default_max_tokens = 1024

[[provider]]
name = "vertex"
type = "vertex"
models = ["claude-sonnet-4@20250514"]
project = "my-project"
region = "global"
credentials_env = "MM_SA"
"""


def test_each_provider_type_decodes_with_its_fields() -> None:
    local, claude, vertex = decode(FULL).provider
    assert isinstance(local, OpenAICompatibleConfig)
    assert local.max_retries == 4 and local.headers == {"x-org": "acme"}
    assert local.timeouts.timeouts().first_byte == 30 and local.timeouts.read == 120.5
    assert isinstance(claude, AnthropicConfig)
    assert claude.base_url == "https://api.anthropic.com" and claude.default_max_tokens == 1024
    assert claude.max_retries == 2
    assert isinstance(vertex, VertexConfig)
    assert vertex.credentials_env == "MM_SA" and vertex.base_url is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('type = "openai_compatible"\nmodels = []\nbase_url = "http://x"\napi_kye = "k"',
         "api_kye"),
        ('type = "anthropic"\nmodels = []\nregion = "x"', "region"),
        ('type = "vertex"\nmodels = []\nregion = "us-east5"', "project"),
        (('type = "vertex"\nmodels = []\nproject = "p"\nregion = "r"\ncredentials_file = "f"\n'
         'credentials_env = "E"'), "at most one of credentials_file, credentials_env"),
        ('type = "openai_compatible"\nmodels = []\nbase_url = "http://x"\nmax_retries = 11',
         "max_retries"),
        (('type = "openai_compatible"\nmodels = []\nbase_url = "http://x"\n'
         '[provider.timeouts]\nread = 0'), "read"),
        (('type = "openai_compatible"\nmodels = []\nbase_url = "http://x"\n'
         '[provider.timeouts]\nwrite = 1'), "write"),
        ('type = "sagemaker"\nmodels = []', "sagemaker"),
        ('type = "bedrock"\nmodels = []', "region"),
    ],
)
def test_invalid_tables_are_rejected_naming_the_field(table: str, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(f'[[provider]]\nname = "p"\n{table}\n')


def test_expand_env() -> None:
    env = {"A": "1", "B": "two"}
    assert expand_env("x${A}y${B}$C$${A}", where="w", environ=env) == "x1ytwo$C$1"
    with pytest.raises(ConfigError, match=r"provider 'p': api_key: environment variable NOPE"):
        expand_env("${NOPE}", where="provider 'p': api_key", environ=env)


def _build(table: str) -> object:
    (config,) = decode(f'[[provider]]\nname = "p"\n{table}\n').provider
    return build_provider(config, ConnectionPool())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('type = "anthropic"\nmodels = []', "ANTHROPIC_API_KEY is not set"),
        ('type = "openai_compatible"\nmodels = []\nbase_url = "${MM_UNSET_URL}"', "MM_UNSET_URL"),
        ('type = "openai_compatible"\nmodels = []\nbase_url = "localhost:8000"', "base_url"),
        (('type = "openai_compatible"\nmodels = []\nbase_url = "http://x/v1"\n'
         '[provider.headers]\n"bad header" = "v"'), "not a valid HTTP token"),
        (('type = "openai_compatible"\nmodels = []\nbase_url = "http://x/v1"\n'
         '[provider.headers]\ncontent-length = "1"'), "set by ModelMux itself"),
        ('type = "vertex"\nmodels = []\nproject = "p"\nregion = "us east"', "region"),
        (('type = "vertex"\nmodels = []\nproject = "p"\nregion = "us-east5"\n'
         'credentials_file = "/nonexistent/sa.json"'), "cannot read"),
        (('type = "vertex"\nmodels = []\nproject = "p"\nregion = "us-east5"\n'
         'credentials_env = "MM_UNSET_SA"'), "MM_UNSET_SA is not set"),
    ],
)
def test_unusable_settings_fail_at_start_up(table: str, message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "MM_UNSET_URL", "MM_UNSET_SA"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=message):
        _build(table)


def test_registry_builds_each_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_KEY", "k")
    sa = {"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com",
          "private_key": "", "token_uri": "http://127.0.0.1:1/token"}
    monkeypatch.setenv("MM_SA", base64.b64encode(json.dumps(sa).encode()).decode())
    with pytest.raises(ConfigError, match="credentials_env 'MM_SA': not usable"):
        build_provider(decode(FULL).provider[2], ConnectionPool())
    local, claude = (build_provider(p, ConnectionPool()) for p in decode(FULL).provider[:2])
    assert isinstance(local, OpenAICompatibleProvider)
    assert local.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert isinstance(claude, AnthropicProvider)
    assert claude.endpoint.url("x", True) == "https://api.anthropic.com/v1/messages"


def test_vertex_urls() -> None:
    assert vertex_origin("global", None) == "https://aiplatform.googleapis.com"
    assert vertex_origin("us-east5", None) == "https://us-east5-aiplatform.googleapis.com"
    assert vertex_origin("us-east5", "http://127.0.0.1:9") == "http://127.0.0.1:9"
    origin = vertex_origin("us-east5", None)
    assert vertex_url(origin, "proj", "us-east5", "claude-sonnet-4@20250514", False) == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/proj/locations/us-east5/"
        "publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    assert vertex_url("https://aiplatform.googleapis.com", "proj", "global", "m", True).endswith(
        "/v1/projects/proj/locations/global/publishers/anthropic/models/m:streamRawPredict")
    hostile = vertex_url(origin, "proj", "us-east5", "../../x?y#z", False)
    assert "/models/..%2F..%2Fx%3Fy%23z:rawPredict" in hostile


def test_vertex_provider_uses_adc_when_no_credentials_are_named() -> None:
    (config,) = decode('[[provider]]\nname = "v"\ntype = "vertex"\nmodels = ["m"]\n'
                       'project = "p"\nregion = "global"\n').provider
    provider = build_provider(config, ConnectionPool())
    assert isinstance(provider, VertexProvider)
    assert provider.tokens._credentials is None  # resolved lazily, in the refresh thread
    assert provider.endpoint.url("m", False).startswith("https://aiplatform.googleapis.com/v1/")


def test_extra_headers_replace_defaults_of_the_same_name() -> None:
    provider = _build('type = "anthropic"\nmodels = []\napi_key = "k"\n[provider.headers]\n'
                      'Anthropic-Version = "2099-01-01"\nanthropic-beta = "tools-2099"')
    assert isinstance(provider, AnthropicProvider)
    headers = provider.endpoint.headers
    assert [v for k, v in headers if k == b"anthropic-version"] == [b"2099-01-01"]
    assert (b"anthropic-beta", b"tools-2099") in headers
    assert (b"accept-encoding", b"identity") in headers
