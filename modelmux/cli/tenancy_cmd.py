"""``modelmux keys|teams|users``: manage API keys, teams and users.

By default each command is one admin API call to the running server (``--url``), with the
admin credential from ``MODELMUX_MASTER_KEY``; with ``--store`` it acts on the configured
``[auth]`` store directly (no server needed). Answers are printed as JSON; a new key is shown
once, in the answer that created it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from modelmux.cli.admin_client import error_message
from modelmux.cli.common import FAILED, INVALID, OK

ACTIONS = {
    "keys": ("create", "list", "show", "update", "revoke", "rotate"),
    "teams": ("create", "list", "show", "update", "delete"),
    "users": ("create", "list", "show", "update", "delete"),
}
_VERBS = {"create": "POST", "list": "GET", "show": "GET", "update": "PATCH", "revoke": "DELETE",
          "delete": "DELETE", "rotate": "POST"}
DEFAULT_URL = "http://127.0.0.1:3000"
TIMEOUT = 30.0

DESCRIPTION = """Manage API keys, teams and users. Each command is one admin API call to the
running server (--url), with the admin credential from MODELMUX_MASTER_KEY; with --store it
acts on the configured [auth] store directly (no server needed). Answers print as JSON; a new
key is shown once, in the answer that created it."""
EPILOG = """EXAMPLES:
  export MODELMUX_MASTER_KEY=...        # the server's [auth] master_key
  modelmux teams create research --models 'gpt-4o*,claude-*' --rpm 600
  modelmux keys create --name ci --team research --tpm 100000 --expires-at 2027-01-01
  modelmux keys update key_0123456789abcdef --metadata '{"owner": "ml-platform"}'
  modelmux keys list
  modelmux keys revoke key_0123456789abcdef
  modelmux keys rotate key_0123456789abcdef
  modelmux keys list --store --config /etc/modelmux/config.toml   # no server needed
"""


class CommandFailed(Exception):
    """A command failed; the message says why."""


def add_parser(commands: Any) -> None:
    for kind, actions in ACTIONS.items():
        parser = commands.add_parser(kind, help=f"manage {kind} (admin API or --store)",
                                     epilog=EPILOG, description=DESCRIPTION)
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action in actions:
            one = sub.add_parser(action, help=f"{action} {kind}")
            _common(one)
            if action in ("show", "update", "revoke", "delete", "rotate"):
                one.add_argument("id", help=f"the {kind[:-1]}'s id" + (
                    "" if kind == "keys" else " or name"))
            if action == "create" and kind != "keys":
                one.add_argument("name", help=f"the {kind[:-1]}'s name")
            if action in ("create", "update"):
                _fields(one, kind, action)
            if action == "list" and kind != "teams":
                one.add_argument("--team", help="only this team's (id or name)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the running server (default {DEFAULT_URL})")
    parser.add_argument("--store", action="store_true",
                        help="act on the configured [auth] store directly, not through a server")
    parser.add_argument("-c", "--config", metavar="FILE", help="config file (with --store)")


def _fields(parser: argparse.ArgumentParser, kind: str, action: str) -> None:
    if kind == "keys" or action == "update":
        parser.add_argument("--name")
    if kind != "teams":
        parser.add_argument("--team", help="team id or name")
        parser.add_argument("--role", choices=("admin", "team_admin", "user", "viewer"))
    if kind == "keys":
        parser.add_argument("--user", help="user id or name")
        parser.add_argument("--expires-at", help="Unix seconds or an ISO 8601 time (UTC)")
    parser.add_argument("--models", help="comma-separated model names, aliases or globs")
    parser.add_argument("--rpm", type=int)
    parser.add_argument("--tpm", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--max-budget-usd", type=float)
    parser.add_argument("--budget-period", choices=("daily", "weekly", "monthly", "total"))
    parser.add_argument("--metadata", type=json_object, metavar="JSON",
                        help="a JSON object kept with the record (replaces the stored one)")


def json_object(text: str) -> dict[str, Any]:
    """``--metadata``'s value: a JSON object.

    Raises:
        argparse.ArgumentTypeError: not JSON, or JSON that is not an object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, like '{\"owner\": \"ml\"}'")
    return value


def body_of(ns: argparse.Namespace) -> dict[str, Any]:
    """The JSON body the flags given describe."""
    body: dict[str, Any] = {}
    for name in ("name", "team", "user", "role", "rpm", "tpm", "max_parallel", "max_budget_usd",
                 "budget_period", "expires_at", "metadata"):
        value = getattr(ns, name, None)
        if value is not None:
            body[name] = value
    models = getattr(ns, "models", None)
    if models is not None:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    expires = body.get("expires_at")
    if isinstance(expires, str) and expires.replace(".", "", 1).isdigit():
        body["expires_at"] = float(expires)
    return body


def request(ns: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None,
            key: str) -> Any:
    """One admin API call; the answer's JSON.

    Raises:
        CommandFailed: the server is unreachable or answered with an error (its message).
    """
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ns.url.rstrip("/") + path, data=data, method=method,
                                 headers={"authorization": f"Bearer {key}",
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise CommandFailed(f"{method} {path}: {exc.code} {error_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommandFailed(f"cannot reach {ns.url}: {getattr(exc, 'reason', exc)}") from None


def via_server(ns: argparse.Namespace) -> Any:
    """Run the command as an admin API call.

    Raises:
        CommandFailed: no ``MODELMUX_MASTER_KEY``, or the call failed.
    """
    key = os.environ.get("MODELMUX_MASTER_KEY")
    if not key:
        raise CommandFailed("set MODELMUX_MASTER_KEY to an admin credential (or use --store)")
    kind, action = ns.command, ns.action
    path = f"/admin/{kind}"
    body: dict[str, Any] | None = None
    if action in ("create", "update"):
        body = body_of(ns)
        if action == "create" and kind != "keys":
            body["name"] = ns.name
    if action in ("show", "update", "revoke", "delete", "rotate"):
        path += "/" + urllib.parse.quote(ns.id, safe="")
    if action == "rotate":
        path += "/rotate"
    answer = request(ns, _VERBS[action], path, body, key)
    if action == "list":
        answer = answer.get("data", answer)
        team = getattr(ns, "team", None)
        if team is not None:
            answer = [r for r in answer if team in (r.get("team_id"), r.get("team"))]
    return answer


async def via_store(ns: argparse.Namespace) -> Any:
    """Run the command on the configured store directly.

    Raises:
        CommandFailed: auth is off or the store cannot be opened; ModelMuxError: a refused change.
    """
    from modelmux.cli.db import STORE_UNUSED
    from modelmux.config.load import load_config
    from modelmux.config.paths import state_dir
    from modelmux.tenancy.manage import Manager
    from modelmux.tenancy.open import open_store

    config = load_config(Path(ns.config) if ns.config else None, unused=STORE_UNUSED).config
    store = open_store(config.auth, state_dir())
    await store.open()
    try:
        manager = Manager(store)
        kind, action = ns.command, ns.action
        if action == "create":
            body = body_of(ns)
            if kind != "keys":
                body["name"] = ns.name
            return await manager.create(kind, body)
        if action == "list":
            records = await manager.list_all(kind)
            team = getattr(ns, "team", None)
            if team is not None:
                found = await store.get_team(team)
                records = [r for r in records if found is not None and r["team_id"] == found.id]
            return records
        if action == "show":
            return await manager.get(kind, ns.id)
        if action == "update":
            return await manager.update(kind, ns.id, body_of(ns))
        if action == "rotate":
            return await manager.rotate(ns.id)
        return await manager.delete(kind, ns.id)
    finally:
        await store.close()


def run(ns: argparse.Namespace) -> int:
    from modelmux.config.problems import ConfigError
    from modelmux.errors import ModelMuxError

    try:
        answer = asyncio.run(via_store(ns)) if ns.store else via_server(ns)
    except CommandFailed as exc:
        print(f"modelmux {ns.command}: {exc}", file=sys.stderr)
        return FAILED
    except ConfigError as exc:
        print(f"modelmux {ns.command}: invalid configuration: {exc}", file=sys.stderr)
        return INVALID
    except ModelMuxError as exc:
        print(f"modelmux {ns.command}: {exc.message}", file=sys.stderr)
        return FAILED
    print(json.dumps(answer, indent=2, sort_keys=True))
    if isinstance(answer, dict) and "key" in answer:
        print("The key is shown only now: store it safely.", file=sys.stderr)
    return OK
