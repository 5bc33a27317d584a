"""``modelmux config init|show|validate|edit|migrate`` and ``modelmux validate``, as subprocesses."""

from __future__ import annotations

import json
import stat
import sys
import tomllib
from pathlib import Path

import msgspec

from modelmux.config.load import load_config
from tests.cli.helpers import run, service_account, user_config, write

SA = json.dumps(service_account())
LEGACY = f"""[server]
port = 8080
log_level = "debug"
max_retry_attempts = 2

[auth]
service_account_json = '''{SA}'''

[streaming]
mode = "buffered"

[vertex]
project = "my-project"
region = "global"
location = "global"
publisher = "anthropic"
model = "claude-sonnet-4@20250514"

[[vertex.models]]
name = "Opus"
model = "claude-opus-4@20250514"
"""
FAKE_EDITOR = """\
import pathlib, sys
path = pathlib.Path(sys.argv[-1])
count = pathlib.Path(sys.argv[1])
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
path.write_text("[server]\\nprot = 1\\n" if n == 0 else
                '[server]\\nport = 3005\\n[[provider]]\\nname = "m"\\ntype = "mock"\\nmodels = ["m"]\\n')
"""


def test_init_non_interactive_writes_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "init", "--non-interactive", "--provider", "openai_compatible",
              "--models", "llama, qwen", "--base-url", "http://127.0.0.1:8000/v1",
              "--api-key-env", "LOCAL_KEY", "--port", "8081")
    path = user_config(tmp_path)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = tomllib.loads(path.read_text())
    assert data["server"] == {"host": "127.0.0.1", "port": 8081}
    assert data["provider"] == [{"name": "local", "type": "openai_compatible",
                                 "models": ["llama", "qwen"], "base_url": "http://127.0.0.1:8000/v1",
                                 "api_key": "${LOCAL_KEY}"}]
    before = path.read_text()
    again = run(tmp_path, "config", "init", "--non-interactive")
    assert again.returncode == 1 and "--force" in again.stderr and path.read_text() == before
    forced = run(tmp_path, "config", "init", "--non-interactive", "--force")
    assert forced.returncode == 0 and tomllib.loads(path.read_text())["provider"][0]["type"] == "mock"


def test_init_non_interactive_needs_what_has_no_default(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "init", "--non-interactive", "--provider", "vertex")
    assert out.returncode == 2 and "--models" in out.stderr and "--project" in out.stderr
    assert not user_config(tmp_path).exists()


def test_init_interactive_reads_answers_from_stdin(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere/config.toml"
    answers = ("vertex\n\nclaude-sonnet-4@20250514\nmy-project\n\n~/sa.json\n"
               "0.0.0.0\n99999\n8090\nloud\ndebug\nnever\n")
    out = run(tmp_path, "config", "init", "--config", str(target), input=answers)
    assert out.returncode == 0, out.stderr
    assert "Value must be between 0 and 65535." in out.stdout and "Please enter one of" in out.stdout
    data = tomllib.loads(target.read_text())
    assert data["server"] == {"host": "0.0.0.0", "port": 8090}
    assert data["logging"] == {"level": "debug"} and data["streaming"] == {"mode": "never"}
    assert data["provider"] == [{"name": "vertex", "type": "vertex",
                                 "models": ["claude-sonnet-4@20250514"], "project": "my-project",
                                 "region": "global", "credentials_file": "~/sa.json"}]


def test_init_interactive_end_of_input_takes_defaults(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "init", input="")
    assert out.returncode == 0, out.stderr
    assert tomllib.loads(user_config(tmp_path).read_text())["provider"][0]["models"] == ["mock"]


def test_show_redacts_secrets_and_names_each_source(tmp_path: Path) -> None:
    write(user_config(tmp_path), '[server]\nport = 3001\n[[provider]]\nname = "c"\n'
          'type = "anthropic"\nmodels = ["claude"]\napi_key = "sk-ant-SECRET"\n'
          '[provider.headers]\nx-api-key = "SECRET2"\nx-team = "blue"\n')
    out = run(tmp_path, "config", "show", MODELMUX_SERVER_HOST="::1")
    assert out.returncode == 0, out.stderr
    assert "SECRET" not in out.stdout and 'api_key = "<redacted>"' in out.stdout
    assert 'x-team = "blue"' in out.stdout
    assert f'port = 3001  # {user_config(tmp_path)}:2' in out.stdout
    assert 'host = "::1"  # environment MODELMUX_SERVER_HOST' in out.stdout
    assert "max_connections = 10000  # default" in out.stdout
    shown = tomllib.loads(out.stdout)
    assert shown["server"]["port"] == 3001 and shown["provider"][0]["name"] == "c"


def test_show_on_an_invalid_config_lists_the_problems(tmp_path: Path) -> None:
    write(user_config(tmp_path), "[server]\nport = 'x'\n")
    out = run(tmp_path, "config", "show")
    assert out.returncode == 2 and "server.port: expected `int`, got `str`" in out.stderr


def test_validate_valid_invalid_and_the_1x_alias(tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", LEGACY)
    out = run(tmp_path, "config", "validate", str(good))
    assert out.returncode == 0, out.stderr
    assert "configuration is valid" in out.stdout
    assert "Opus -> vertex/claude-opus-4@20250514" in out.stdout
    assert "claude-sonnet-4 -> vertex/claude-sonnet-4@20250514" in out.stdout
    bad = write(tmp_path / "bad.toml", '[server]\nprot = 1\n[logging]\nlevel = "loud"\n')
    out = run(tmp_path, "config", "validate", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2: server.prot: unknown field `prot`" in out.stderr
    assert f"{bad}:4: logging.level: expected one of" in out.stderr
    legacy = run(tmp_path, "validate", str(bad))
    assert legacy.returncode == 2 and "1.x name of `modelmux config validate`" in legacy.stderr


def test_validate_builds_providers(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[[provider]]\nname = "v"\ntype = "vertex"\nproject = "p"\n'
                   'region = "Not A Region"\nmodels = ["m"]\ncredentials_json = "{}"\n')
    out = run(tmp_path, "config", "validate", str(config))
    assert out.returncode == 2 and f"{config}:1: provider[0]:" in out.stderr


def test_edit_reopens_until_valid(tmp_path: Path) -> None:
    editor = write(tmp_path / "editor.py", FAKE_EDITOR)
    command = f"{sys.executable} {editor} '{tmp_path / 'count'}'"
    out = run(tmp_path, "config", "edit", input="y\n", VISUAL=command, EDITOR="false")
    assert out.returncode == 0, out.stderr
    assert "unknown field `prot`" in out.stderr and "Re-open the editor" in out.stdout
    assert (tmp_path / "count").read_text() == "2"
    assert "port = 3005" in user_config(tmp_path).read_text()
    assert stat.S_IMODE(user_config(tmp_path).stat().st_mode) == 0o600


def test_edit_left_invalid_exits_2(tmp_path: Path) -> None:
    editor = write(tmp_path / "editor.py", FAKE_EDITOR)
    out = run(tmp_path, "config", "edit", input="n\n", EDITOR=f"{sys.executable} {editor} "
              f"{tmp_path / 'count'}")
    assert out.returncode == 2 and "is invalid" in out.stdout
    assert run(tmp_path, "config", "edit", EDITOR="/nonexistent/editor").returncode == 1


def test_migrate_in_place_keeps_a_backup_and_loads_the_same(tmp_path: Path) -> None:
    path = write(user_config(tmp_path), LEGACY)
    before = load_config(path, environ={"HOME": str(tmp_path)}, migrate_macos=False).config
    out = run(tmp_path, "config", "migrate")
    assert out.returncode == 0, out.stderr
    assert (path.parent / "config.toml.1x.bak").read_text() == LEGACY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert set(data) == {"server", "streaming", "logging", "provider", "models"}
    after = load_config(path, environ={"HOME": str(tmp_path)}, migrate_macos=False)
    assert msgspec.to_builtins(after.config) == msgspec.to_builtins(before)
    assert not any("1.x" in w.message for w in after.warnings)
    again = run(tmp_path, "config", "migrate")
    assert again.returncode == 0 and "already in the 2.x format" in again.stdout


def test_migrate_folds_in_1x_variables_and_prints(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "migrate", "--output", "-", PORT="9000",
              VERTEX_PROJECT="p", VERTEX_REGION="us-east5", VERTEX_LOCATION="us-east5",
              VERTEX_PUBLISHER="anthropic", VERTEX_MODEL_ID="claude-sonnet-4@20250514",
              GCP_SERVICE_ACCOUNT_KEY="e30=", MODELMUX_AUTH_SERVICE_ACCOUNT_FILE="/sa.json")
    assert out.returncode == 0, out.stderr
    data = tomllib.loads(out.stdout)
    assert data["server"] == {"port": 9000}
    assert data["provider"][0]["credentials_file"] == "/sa.json"
    assert data["models"]["claude-sonnet-4"] == "vertex/claude-sonnet-4@20250514"
    assert "GCP_SERVICE_ACCOUNT_KEY" in out.stdout.splitlines()[2]
    assert not user_config(tmp_path).exists()


def test_migrate_refuses_to_overwrite_another_file(tmp_path: Path) -> None:
    source = write(tmp_path / "old.toml", LEGACY)
    target = write(tmp_path / "new.toml", "keep")
    out = run(tmp_path, "config", "migrate", str(source), "-o", str(target))
    assert out.returncode == 1 and target.read_text() == "keep"
    out = run(tmp_path, "config", "migrate", str(source), "-o", str(target), "--force")
    assert out.returncode == 0 and "[[provider]]" in target.read_text()
    assert run(tmp_path, "config", "migrate", str(tmp_path / "none.toml")).returncode == 1
