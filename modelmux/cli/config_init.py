"""``modelmux config init`` (prompts, or ``--non-interactive`` with flags) and ``config edit``.

Both write the file owner-only (0600) in an owner-only folder; ``init`` never replaces a file
without ``--force``; ``edit`` opens ``$VISUAL``/``$EDITOR`` (split like a shell would), validates
after the editor exits, and offers to reopen it while the file is invalid.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelmux.cli.common import FAILED, INVALID, OK, ask, confirm, print_problems, report_invalid
from modelmux.config.load import load_config
from modelmux.config.paths import user_config_file
from modelmux.config.problems import ConfigError
from modelmux.config.tomltext import dumps

PROVIDER_TYPES = ("mock", "openai_compatible", "anthropic", "vertex")
LEVELS = ("trace", "debug", "info", "warn", "error")
MODES = ("auto", "standard", "buffered", "never", "always")
DEFAULT_NAMES = {"mock": "mock", "openai_compatible": "local", "anthropic": "claude",
                 "vertex": "vertex"}
TEMPLATE = """# ModelMux configuration. Reference: docs/configuration.md; check it: modelmux config validate

[server]
host = "127.0.0.1"   # 0.0.0.0 listens on every interface
port = 3000          # 0 picks a free port

[logging]
level = "info"       # trace, debug, info, warn, error
# file = "~/.local/state/modelmux/modelmux.log"   # also log to this file (modelmux logs reads it)

[[provider]]
name = "mock"
type = "mock"        # mock, openai_compatible, openai, azure, huggingface, anthropic, vertex,
                     # gemini, cohere, bedrock
models = ["mock"]

# [[provider]]
# name = "vertex"
# type = "vertex"
# project = "my-project"
# region = "global"
# models = ["claude-sonnet-4@20250514"]
# credentials_file = "~/.config/modelmux/service-account.json"

# [models]           # public names clients send -> provider/upstream-model
# "claude-sonnet-4" = "vertex/claude-sonnet-4@20250514"
"""

QUESTIONS = {
    "openai_compatible": [("base_url", "Base URL"),
                          ("api_key_env", "Environment variable with the API key (empty: none)")],
    "anthropic": [("api_key_env", "Environment variable with the API key")],
    "vertex": [("project", "Google Cloud project"), ("region", "Region"),
               ("credentials_file",
                "Service-account key file (empty: Application Default Credentials)")],
}
"""The questions each provider type adds: (answer key, prompt)."""

INIT_EPILOG = """EXAMPLES:
  modelmux config init
  modelmux config init --non-interactive                      # the mock provider
  modelmux config init --non-interactive --provider vertex --project my-project \\
      --region global --models claude-sonnet-4@20250514 --credentials-file ~/sa.json
  modelmux config init --non-interactive --provider anthropic --models claude-sonnet-4-5 \\
      --api-key-env ANTHROPIC_API_KEY --port 8080 --force"""


def add_parsers(subs: Any) -> None:
    """Register ``config init`` and ``config edit``."""
    init_parser = subs.add_parser(
        "init", help="write a new config file (prompts, or --non-interactive with flags)",
        epilog=INIT_EPILOG,
        description="Write a new config file (default: the user config file) from answers to a "
        "few questions, or from flags with --non-interactive. Refuses to replace an existing "
        "file without --force. The file is readable by its owner only (0600).")
    add = init_parser.add_argument
    add("-c", "--config", metavar="FILE", type=Path, help="where to write (default: user file)")
    add("--non-interactive", action="store_true", help="ask nothing; take flags and defaults")
    add("--force", action="store_true", help="replace an existing file")
    add("--provider", choices=PROVIDER_TYPES, help="provider type (default: mock)")
    add("--name", help="provider name (default: by type)")
    add("--models", help="comma-separated model names the provider serves")
    add("--base-url", help="openai_compatible: the server's URL, e.g. http://127.0.0.1:8000/v1")
    add("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    add("--project", help="vertex: Google Cloud project")
    add("--region", help="vertex: region, or global (default: global)")
    add("--credentials-file", metavar="FILE", help="vertex: service-account JSON key file")
    add("--host", help="address to listen on (default: 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default: 3000)")
    add("--log-level", choices=LEVELS, help="log level (default: info)")
    add("--streaming-mode", choices=MODES, help="streaming mode (default: auto)")
    edit_parser = subs.add_parser(
        "edit", help="open the config in $VISUAL/$EDITOR, validate it after saving",
        description="Open the config file in $VISUAL, else $EDITOR, else nano/vi (creating it "
        "from an example when missing), then validate it; while it is invalid, offer to reopen.",
        epilog="EXAMPLES:\n  modelmux config edit\n  EDITOR=\"code --wait\" modelmux config edit\n"
        "  modelmux config edit --config /etc/modelmux/config.toml")
    edit_parser.add_argument("-c", "--config", metavar="FILE", type=Path,
                             help="the file to edit (default: the user config file)")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600, creating folders as 0700.

    Raises:
        OSError: the file or its folder cannot be written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _choose(prompt: str, choices: tuple[str, ...], default: str) -> str:
    for _ in range(5):
        answer = ask(f"{prompt} ({'/'.join(choices)}) [{default}]: ", default).lower()
        answer = "warn" if answer == "warning" else answer
        if answer in choices:
            return answer
        print(f"Please enter one of: {', '.join(choices)}.")
    return default


def _number(prompt: str, default: int, low: int, high: int) -> int:
    for _ in range(5):
        answer = ask(f"{prompt} ({low}-{high}) [{default}]: ", str(default))
        try:
            value = int(answer)
        except ValueError:
            print(f"Invalid number: {answer!r}")
            continue
        if low <= value <= high:
            return value
        print(f"Value must be between {low} and {high}.")
    return default


def _answers(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags, then (unless --non-interactive) a question for each one not given."""
    interactive = not ns.non_interactive
    value = dict(vars(ns))
    if interactive:
        print("ModelMux configuration setup (Enter takes the [default])")
    if value["provider"] is None:
        value["provider"] = _choose("Provider type", PROVIDER_TYPES, "mock") if interactive else "mock"
    kind = value["provider"]
    defaults = {"name": DEFAULT_NAMES[kind], "models": "mock" if kind == "mock" else "",
                "base_url": "http://127.0.0.1:8000/v1", "region": "global",
                "api_key_env": {"anthropic": "ANTHROPIC_API_KEY"}.get(kind, ""),
                "project": "", "credentials_file": "", "host": "127.0.0.1"}
    questions = [("name", "Provider name"), ("models", "Models it serves, comma-separated"),
                 *QUESTIONS.get(kind, [])]
    questions.append(("host", "Listen address"))
    for key, prompt in questions:
        if value.get(key) is None:
            value[key] = ask(f"{prompt} [{defaults[key]}]: ", defaults[key]) if interactive \
                else defaults[key]
    if value["port"] is None:
        value["port"] = _number("HTTP server port", 3000, 0, 65535) if interactive else 3000
    if value["log_level"] is None:
        value["log_level"] = _choose("Logging level", LEVELS, "info") if interactive else "info"
    if value["streaming_mode"] is None:
        value["streaming_mode"] = _choose("Streaming mode", MODES, "auto") if interactive else "auto"
    return value


def build(answers: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config data for ``answers``, and what is missing for it to be usable."""
    kind = answers["provider"]
    models = [m.strip() for m in (answers["models"] or "").split(",") if m.strip()]
    provider: dict[str, Any] = {"name": answers["name"], "type": kind, "models": models}
    missing = [] if models else ["--models"]
    if kind == "openai_compatible":
        provider["base_url"] = answers["base_url"]
    if kind == "vertex":
        provider.update(project=answers["project"], region=answers["region"] or "global")
        missing += [] if answers["project"] else ["--project"]
        if answers["credentials_file"]:
            provider["credentials_file"] = answers["credentials_file"]
    if kind in ("openai_compatible", "anthropic") and answers["api_key_env"]:
        provider["api_key"] = "${" + answers["api_key_env"] + "}"
    data = {"server": {"host": answers["host"], "port": answers["port"]},
            "logging": {"level": answers["log_level"]},
            "streaming": {"mode": answers["streaming_mode"]}, "provider": [provider]}
    return data, missing


def init(ns: argparse.Namespace) -> int:
    path: Path = ns.config or user_config_file()
    if path.exists() and not ns.force:
        print(f"modelmux: {path} already exists; use --force to replace it, or "
              "`modelmux config edit` to change it", file=sys.stderr)
        return FAILED
    data, missing = build(_answers(ns))
    if missing:
        print(f"modelmux: cannot write a usable config: missing {', '.join(missing)}",
              file=sys.stderr)
        return INVALID
    text = "# ModelMux configuration written by `modelmux config init`.\n" \
           "# Reference: docs/configuration.md; check it: modelmux config validate\n\n" + dumps(data)
    try:
        write_private(path, text)
    except OSError as exc:
        print(f"modelmux: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return FAILED
    print(f"Configuration saved to: {path}")
    try:
        load_config(path, migrate_macos=False, expand=False)
    except ConfigError as exc:
        report_invalid(exc)
        return INVALID
    print("Next: `modelmux config validate`, then `modelmux serve`.")
    return OK


def editor_command() -> list[str]:
    """``$VISUAL``, else ``$EDITOR``, split like a shell would; else nano, else vi."""
    for name in ("VISUAL", "EDITOR"):
        value = os.environ.get(name, "").strip()
        if value:
            return shlex.split(value)
    return [shutil.which("nano") or "vi"]


def edit(ns: argparse.Namespace) -> int:
    path: Path = ns.config or user_config_file()
    if not path.exists():
        write_private(path, TEMPLATE)
        print(f"Created {path} from the example configuration.")
    command = [*editor_command(), str(path)]
    for _ in range(20):
        print(f"Opening {path} with: {shlex.join(command[:-1])}")
        try:
            finished = subprocess.run(command, check=False)
        except OSError as exc:
            print(f"modelmux: cannot start the editor {command[0]!r}: {exc.strerror or exc}; "
                  "set $VISUAL or $EDITOR", file=sys.stderr)
            return FAILED
        if finished.returncode != 0:
            print(f"note: the editor exited with status {finished.returncode}")
        try:
            loaded = load_config(path, migrate_macos=False)
        except ConfigError as exc:
            report_invalid(exc)
            if confirm("Re-open the editor to fix it?", default=True, on_eof=False):
                continue
            print(f"{path} was saved but is invalid; ModelMux will not start with it.")
            return INVALID
        print_problems(loaded.warnings)
        print(f"{path} is valid.")
        return OK
    return INVALID
