"""``modelmux config show|validate|migrate`` (``init`` and ``edit`` live in ``config_init``), and
the 1.x ``modelmux validate`` alias.

``show`` prints the effective TOML with secrets redacted and each value's layer; ``validate``
lists every problem (exit 2) or the model routing (exit 0); ``migrate`` writes a 1.x file (and
the 1.x variables in use) as the equivalent 2.x file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from modelmux.cli import config_init
from modelmux.cli.common import (
    FAILED,
    INVALID,
    OK,
    add_config_option,
    load_or_report,
    print_problems,
    report_invalid,
)
from modelmux.cli.preflight import build_problems
from modelmux.config.env import LEGACY_ENV_PATHS, PLAIN_ENV_PATHS
from modelmux.config.layers import ValueOrigins
from modelmux.config.load import LoadedConfig, candidate_paths, gather
from modelmux.config.migrate import LEGACY_ENV, is_legacy
from modelmux.config.paths import user_config_file
from modelmux.config.problems import ConfigError, KeyPath
from modelmux.config.redact import redact
from modelmux.config.tomltext import dumps
from modelmux.config.validate import check_config, check_schema

CONFIG_EPILOG = """EXAMPLES:
  modelmux config init
  modelmux config init --non-interactive --provider openai_compatible --models llama \\
      --base-url http://127.0.0.1:8000/v1
  modelmux config show
  modelmux config validate ./config.toml
  EDITOR="code --wait" modelmux config edit
  modelmux config migrate --output -"""


def add_parser(commands: Any) -> None:
    """Register ``config`` (with its subcommands) and the 1.x ``validate`` alias."""
    config = commands.add_parser("config", help="init, show, validate, edit or migrate the configuration",
                                 description="Manage the ModelMux configuration.",
                                 epilog=CONFIG_EPILOG)
    subs = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", title="SUBCOMMANDS",
                                 prog="modelmux config")
    config_init.add_parsers(subs)
    show = subs.add_parser("show", help="print the effective configuration (secrets redacted) "
                           "with the source of each value",
                           description="Print the effective configuration as TOML: every value, "
                           "secrets redacted, each followed by the layer it came from.",
                           epilog="EXAMPLES:\n  modelmux config show\n"
                           "  MODELMUX_SERVER_PORT=8080 modelmux config show")
    add_config_option(show)
    for name, parser in (("validate", subs), ("validate", commands)):
        legacy = parser is commands
        check = parser.add_parser(
            name, help="check the configuration (1.x name of `config validate`)" if legacy
            else "check a config (default: the effective one) and list every problem",
            description="Check the configuration: the schema, cross-field rules, ${VAR} "
            "references and provider settings. Prints every problem with file, line and key; "
            "exit code 2 when there is any.",
            epilog="EXAMPLES:\n  modelmux config validate\n  modelmux config validate ./config.toml"
            + ("\n  modelmux validate" if legacy else ""))
        check.add_argument("file", nargs="?", type=Path, metavar="FILE",
                           help="the file to check instead of the user and system files")
        add_config_option(check)
    migrate = subs.add_parser(
        "migrate", help="write a ModelMux 1.x config (and 1.x variables) as a 2.x file",
        description="Write the 2.x equivalent of a ModelMux 1.x config file, folding in the 1.x "
        "environment variables in use (VERTEX_*, LLM_*, PORT, ...). By default the file is "
        "converted in place and the original kept as FILE.1x.bak.",
        epilog="EXAMPLES:\n  modelmux config migrate\n  modelmux config migrate old.toml -o new.toml\n"
        "  modelmux config migrate --output -        # print, write nothing")
    migrate.add_argument("source", nargs="?", type=Path, metavar="SOURCE",
                         help="the 1.x file (default: the user config file)")
    migrate.add_argument("-o", "--output", metavar="FILE",
                         help="where to write (default: SOURCE itself); - prints to stdout")
    migrate.add_argument("--force", action="store_true", help="overwrite OUTPUT or the backup")
    migrate.add_argument("--no-env", action="store_true",
                         help="ignore 1.x environment variables")
    config.set_defaults(config_parser=config)


def run(ns: argparse.Namespace) -> int:
    if ns.command == "validate":
        print("note: `modelmux validate` is the 1.x name of `modelmux config validate`",
              file=sys.stderr)
        return validate(ns)
    handlers = {"show": show, "validate": validate, "migrate": migrate,
                "init": config_init.init, "edit": config_init.edit}
    handler = handlers.get(ns.config_command or "")
    if handler is None:
        print("modelmux config: missing SUBCOMMAND\n", file=sys.stderr)
        ns.config_parser.print_help(sys.stderr)
        return INVALID
    return handler(ns)


def _notes(data: Any, origins: ValueOrigins, path: KeyPath, notes: dict[KeyPath, str]) -> None:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            _notes(value, origins, (*path, key), notes)
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        for index, value in enumerate(data):
            _notes(value, origins, (*path, index), notes)
    else:
        origin = origins.get(path)
        notes[path] = origin.describe() if origin else "default"


def show(ns: argparse.Namespace) -> int:
    loaded = load_or_report(ns.config)
    if loaded is None:
        return INVALID
    data = redact(msgspec.to_builtins(loaded.config))
    for empty in [key for key in ("models", "routing") if not data[key]]:
        del data[empty]
    notes: dict[KeyPath, str] = {}
    _notes(data, loaded.origins, (), notes)
    files = [str(p) for p in loaded.files] or ["none (looked in " + ", ".join(
        str(p) for p in candidate_paths()) + ")"]
    print("# Effective ModelMux configuration; secrets redacted; `# source` after each value.")
    print(f"# Files read (lowest first): {', '.join(files)}")
    print(dumps(data, notes), end="")
    return OK


def routing_lines(loaded: LoadedConfig) -> list[str]:
    """``name → provider/model`` for every public model name, as 1.x's model list did."""
    lines = [f"  {name} -> {target}" for name, target, _ in loaded.config.model_aliases()]
    for group in loaded.config.routing.group:
        served = ", ".join(f"{d.provider}/{d.model or group.name}" for d in group.deployments)
        lines += [f"  {name} -> {served}" for name in (group.name, *group.aliases)]
    for provider in loaded.config.provider:
        lines += [f"  {model} -> {provider.name}/{model}" for model in provider.models]
    return lines


def validate(ns: argparse.Namespace) -> int:
    loaded = load_or_report(ns.file or ns.config)
    if loaded is None:
        return INVALID
    problems = build_problems(loaded.config, loaded.origins)
    if problems:
        report_invalid(ConfigError.from_problems(problems))
        return INVALID
    where = ", ".join(map(str, loaded.files)) or "built-in defaults (no config file found)"
    print(f"configuration is valid: {where}")
    print(f"models ({len(routing_lines(loaded))}):")
    print("\n".join(routing_lines(loaded)))
    return OK


def _legacy_env(environ: dict[str, str]) -> dict[str, str]:
    """The 1.x variables in ``environ``; inline service-account JSON becomes a reference."""
    names = {*PLAIN_ENV_PATHS, *LEGACY_ENV_PATHS, *LEGACY_ENV}
    picked = {k: v for k, v in environ.items() if k in names}
    if "MODELMUX_AUTH_SERVICE_ACCOUNT_JSON" in picked:
        picked["MODELMUX_AUTH_SERVICE_ACCOUNT_JSON"] = "${MODELMUX_AUTH_SERVICE_ACCOUNT_JSON}"
    return picked


def migrate(ns: argparse.Namespace) -> int:
    source: Path | None = ns.source or user_config_file()
    assert source is not None
    environ = {} if ns.no_env else _legacy_env(dict(os.environ))
    if not source.is_file():
        if ns.source is not None or not environ:
            print(f"modelmux: nothing to migrate: {source} does not exist"
                  + ("" if ns.source else " and no 1.x variables are set"), file=sys.stderr)
            return FAILED
        source = None
    base = {k: os.environ[k] for k in ("HOME", "XDG_CONFIG_HOME") if k in os.environ}
    data, origins, _, problems, _ = gather(source, environ={**base, **environ},
                                           migrate_macos=False, read_files=source is not None)
    legacy_file = source is not None and is_legacy(_parse(source))
    if not legacy_file and not environ:
        print(f"{source} is already in the 2.x format; nothing to do")
        return OK
    problems += check_schema(data, origins) + check_config(data, origins)
    if any(not p.warning for p in problems):
        report_invalid(ConfigError.from_problems(problems))
        return INVALID
    print_problems([p for p in problems if p.warning and "compatibility mapping" not in p.message
                    and "(deprecated" not in p.message])
    folded = sorted(environ)
    origin = f" from {source}" if source else ""
    header = [f"# ModelMux 2 configuration written by `modelmux config migrate`{origin}.",
              ("# ModelMux 1.x listened on all interfaces; 2.x listens on [server] host "
               "(default 127.0.0.1).")]
    if folded:
        header.append(f"# Folded in from the environment (you may unset them): {', '.join(folded)}")
    text = "\n".join(header) + "\n\n" + dumps(data)
    output = ns.output or (str(source) if source else str(user_config_file()))
    if output == "-":
        print(text, end="")
        return OK
    target = Path(output)
    if source is not None and target == source:
        backup = source.with_name(source.name + ".1x.bak")
        if backup.exists() and not ns.force:
            print(f"modelmux: {backup} exists; use --force to replace it", file=sys.stderr)
            return FAILED
        shutil.copy2(source, backup)
        print(f"kept the 1.x file as {backup}")
    elif target.exists() and not ns.force:
        print(f"modelmux: {target} exists; use --force to overwrite it", file=sys.stderr)
        return FAILED
    config_init.write_private(target, text)
    print(f"wrote {target}")
    return OK


def _parse(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
