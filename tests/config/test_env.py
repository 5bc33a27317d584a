"""``MODELMUX_<SECTION>_<KEY>`` variables, 1.x value words, ``${VAR}`` and ``~`` expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.config.env import env_names, environment_layer, parse_value
from modelmux.config.problems import ConfigError
from tests.config.helpers import load, write

MOCK = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n'


def test_every_scalar_setting_has_a_variable() -> None:
    names = env_names()
    for name in ("MODELMUX_SERVER_PORT", "MODELMUX_SERVER_HOST", "MODELMUX_SERVER_WORKERS",
                 "MODELMUX_SERVER_CORS_ALLOW_ORIGINS", "MODELMUX_STREAMING_MODE",
                 "MODELMUX_STREAMING_BUFFER_SIZE", "MODELMUX_STREAMING_CHUNK_TIMEOUT_MS",
                 "MODELMUX_LOGGING_LEVEL", "MODELMUX_LOGGING_FORMAT", "MODELMUX_LOGGING_FILE"):
        assert name in names


@pytest.mark.parametrize("word", ["true", "YES", "1", "on", "Enabled"])
def test_true_words(word: str) -> None:
    assert parse_value(word, bool, ()) is True


@pytest.mark.parametrize("word", ["false", "No", "0", "OFF", "disabled"])
def test_false_words(word: str) -> None:
    assert parse_value(word, bool, ()) is False


def test_other_boolean_words_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected a boolean"):
        parse_value("maybe", bool, ())


@pytest.mark.parametrize(("word", "mode"), [
    ("AUTO", "auto"), ("never", "never"), ("false", "never"), ("no", "never"),
    ("non-streaming", "never"), ("standard", "standard"), ("Normal", "standard"),
    ("buffered", "buffered"), ("buffer", "buffered"), ("always", "always"), ("true", "always"),
    ("yes", "always"),
])
def test_streaming_mode_words_of_1x(tmp_path: Path, word: str, mode: str) -> None:
    loaded = load(tmp_path, environ={"MODELMUX_STREAMING_MODE": word})
    assert loaded.config.streaming.mode == mode


@pytest.mark.parametrize("level", ["trace", "DEBUG", "Info", "warn", "warning", "error"])
def test_log_levels_case_insensitive(tmp_path: Path, level: str) -> None:
    loaded = load(tmp_path, environ={"MODELMUX_LOGGING_LEVEL": level})
    assert loaded.config.logging.level == {"warning": "warn"}.get(level.lower(), level.lower())


def test_1x_server_log_level_still_works_with_a_warning(tmp_path: Path) -> None:
    loaded = load(tmp_path, environ={"MODELMUX_SERVER_LOG_LEVEL": "error"})
    assert loaded.config.logging.level == "error"
    assert any(w.origin and w.origin.name == "MODELMUX_SERVER_LOG_LEVEL" for w in loaded.warnings)


def test_lists_are_comma_separated(tmp_path: Path) -> None:
    loaded = load(tmp_path, environ={"MODELMUX_SERVER_CORS_ALLOW_ORIGINS": "https://a, https://b,"})
    assert loaded.config.server.cors.allow_origins == ["https://a", "https://b"]


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("MODELMUX_SERVER_PORT", "99999", "expected a port in 0-65535"),
    ("MODELMUX_SERVER_PORT", "http", "expected an integer, got 'http'"),
    ("MODELMUX_STREAMING_MODE", "sometimes", "expected one of auto"),
    ("MODELMUX_STREAMING_BUFFER_SIZE", "0", "expected `int` >= 1"),
])
def test_bad_values_are_errors_naming_the_variable(tmp_path: Path, name: str, value: str,
                                                    reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ={name: value})
    assert f"environment {name}" in str(info.value) and reason in str(info.value)


def test_unknown_names_in_a_section_warn_and_others_are_ignored() -> None:
    _, problems = environment_layer({"MODELMUX_SERVER_PROT": "1", "MODELMUX_PURE_PYTHON": "1",
                                     "MODELMUX_LLM_PROVIDER_PROJECT_ID": "x"})
    assert len(problems) == 2 and all(p.warning for p in problems)
    assert "unknown setting" in problems[0].render() or "unknown setting" in problems[1].render()


def test_braced_references_and_home_are_expanded(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", MOCK.replace('models = ["m"]', 'models = ["${MODEL}-1"]')
                   + '[logging]\nfile = "~/logs/${NAME}.log"\n')
    loaded = load(tmp_path, config, environ={"MODEL": "big", "NAME": "mm"})
    assert loaded.config.provider[0].models == ["big-1"]
    assert loaded.config.logging.file == str(tmp_path / "logs/mm.log")


def test_a_missing_reference_names_the_variable_the_file_and_the_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", MOCK + '[logging]\nfile = "${NOT_SET_ANYWHERE}/x"\n'
                   'format = "${ALSO_MISSING}"\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    text = str(info.value)
    assert f"{config}:6: logging.file: environment variable NOT_SET_ANYWHERE is not set" in text
    assert f"{config}:7: logging.format: environment variable ALSO_MISSING is not set" in text


def test_unbraced_dollar_and_inner_tilde_stay(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", MOCK.replace('name = "m"', 'name = "$HOME~x"'))
    assert load(tmp_path, config).config.provider[0].name == "$HOME~x"


def test_an_unknown_name_in_our_namespace_warns_with_the_likely_setting(tmp_path: Path) -> None:
    loaded = load(tmp_path, environ={"MODELMUX_SEVER_PORT": "3001", "MODELMUX_ROUTING_STRATEGY": "x"})
    found = {w.origin.name: w.render() for w in loaded.warnings if w.origin and w.origin.name}
    assert "not a ModelMux setting; ignored (did you mean MODELMUX_SERVER_PORT?)" \
        in found["MODELMUX_SEVER_PORT"]
    assert "routing is configured in files only" in found["MODELMUX_ROUTING_STRATEGY"]
    assert loaded.config.server.port == 3000


def test_variables_that_are_not_settings_do_not_warn(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", MOCK + 'text = "${MODELMUX_GREETING}"\n')
    environ = {"MODELMUX_PURE_PYTHON": "0", "MODELMUX_REQUIRE_NATIVE": "0",
               "MODELMUX_HEALTHCHECK_URL": "http://127.0.0.1:3000/health",
               "MODELMUX_GREETING": "hi"}  # a name the config file asks for
    loaded = load(tmp_path, config, environ=environ)
    assert loaded.warnings == [] and loaded.config.provider[0].text == "hi"


def test_auth_and_jwt_settings_have_variables_beside_1x_service_account_names(
        tmp_path: Path) -> None:
    file = write(tmp_path / "mm.toml", MOCK + '[auth]\nmode = "keys"\n[auth.jwt]\n'
                 'issuer = "https://login.example/"\naudience = "file"\n'
                 'jwks_file = "/etc/jwks.json"\n')
    loaded = load(tmp_path, file, environ={
        "MODELMUX_AUTH_MASTER_KEY": "sk-master-from-env-0123",
        "MODELMUX_AUTH_STORE": "postgres",
        "MODELMUX_AUTH_POSTGRES_DSN": "postgresql://mm@db/mm",
        "MODELMUX_AUTH_KEY_CACHE_SECONDS": "5",
        "MODELMUX_AUTH_JWT_AUDIENCE": "modelmux",
        "MODELMUX_AUTH_JWT_ALGORITHMS": "ES256",
        "MODELMUX_METRICS_PUBLIC": "yes"})
    auth = loaded.config.auth
    assert (auth.mode, auth.master_key, auth.store, auth.key_cache_seconds) == (
        "keys", "sk-master-from-env-0123", "postgres", 5.0)
    assert auth.jwt is not None and auth.jwt.audience == "modelmux"
    assert auth.jwt.issuer == "https://login.example/" and auth.jwt.algorithms == ["ES256"]
    assert loaded.config.metrics.public is True
    assert not loaded.warnings
    names = env_names()
    assert "MODELMUX_AUTH_JWT" not in names  # the table itself is no setting
    assert "MODELMUX_AUTH_SERVICE_ACCOUNT_FILE" not in names  # 1.x's, mapped apart


def test_a_1x_auth_variable_and_a_2x_one_each_go_their_own_way(tmp_path: Path) -> None:
    layer, problems = environment_layer({"MODELMUX_AUTH_SERVICE_ACCOUNT_JSON": "{}",
                                         "MODELMUX_AUTH_MODE": "keys"})
    assert layer.data == {"_legacy": {"auth": {"service_account_json": "{}"}},
                          "auth": {"mode": "keys"}}
    assert [p.origin.name for p in problems if p.origin] == ["MODELMUX_AUTH_SERVICE_ACCOUNT_JSON"]
