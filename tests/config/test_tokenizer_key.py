"""A provider's ``tokenizer`` key: one path or a table by model, checked at load (the file is
readable, the ``tokenizers`` extra installed, the table's models listed) with messages that
name the file and the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from modelmux.config.problems import ConfigError
from modelmux.config.providers import OpenAICompatibleConfig
from tests.config.helpers import load, write
from tests.messages.word_tokenizer import save_word_tokenizer

PROVIDER = """
[[provider]]
name = "local"
type = "openai_compatible"
base_url = "http://127.0.0.1:8000/v1"
models = ["llama", "qwen"]
"""


def test_one_path_or_a_table(tmp_path: Path) -> None:
    path = save_word_tokenizer(tmp_path / "llama" / "tokenizer.json")
    config = write(tmp_path / "config.toml", PROVIDER + f'tokenizer = "{path}"\n')
    [provider] = load(tmp_path, config).config.provider
    assert isinstance(provider, OpenAICompatibleConfig) and provider.tokenizer == str(path)
    table = PROVIDER + f'[provider.tokenizer]\nllama = "{path}"\nqwen = "{path}"\n'
    config = write(tmp_path / "config.toml", table)
    [provider] = load(tmp_path, config).config.provider
    assert provider.tokenizer == {"llama": str(path), "qwen": str(path)}


def test_a_missing_file_stops_the_load_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "tokenizer.json"
    table = PROVIDER + f'[provider.tokenizer]\nqwen = "{missing}"\n'
    config = write(tmp_path / "config.toml", table)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    text = str(info.value)
    assert "provider[0].tokenizer.qwen" in text
    assert f"cannot read tokenizer file '{missing}': No such file or directory" in text


def test_a_table_naming_an_unlisted_model_warns(tmp_path: Path) -> None:
    path = save_word_tokenizer(tmp_path / "tokenizer.json")
    table = PROVIDER + f'[provider.tokenizer]\nmistral = "{path}"\n'
    config = write(tmp_path / "config.toml", table)
    warnings = [str(w) for w in load(tmp_path, config).warnings]
    assert any("no model `mistral` in this provider's models" in w for w in warnings), warnings


def test_a_wrong_type_is_a_schema_error(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", PROVIDER + "tokenizer = 5\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    assert "provider[0].tokenizer" in str(info.value)


def test_without_the_extra_the_load_says_how_to_get_it(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_word_tokenizer(tmp_path / "tokenizer.json")
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "tokenizers" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    config = write(tmp_path / "config.toml", PROVIDER + f'tokenizer = "{path}"\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, config)
    assert ("tokenizer needs the tokenizers extra: the tokenizers package is not installed "
            "(pip install 'modelmux[tokenizers]')") in str(info.value)
