"""``modelmux serve`` with ``[auth] mode = "keys"``, driven by the official SDKs: keys made
through the admin API and the CLI, every refusal in its door's shape, /v1/models filtered,
/metrics and /health guarded, the client's key kept from the providers and the logs, keys kept
across a restart, and no unauthenticated serving on a public address."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess, modelmux_command
from tests.fakes.claude import FakeClaude
from tests.fakes.http import FakeServer
from tests.fakes.openai import FakeOpenAI

MASTER = "mm-master-7f3e0c1d9b2a"


class Upstreams:
    """A fake OpenAI-compatible and a fake Anthropic upstream on one loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.openai = FakeOpenAI(api_key="sk-upstream-openai")
        self.claude = FakeClaude(api_key="sk-ant-upstream")
        self.thread.start()
        for fake in (self.openai, self.claude):
            asyncio.run_coroutine_threadsafe(fake.__aenter__(), self.loop).result(10)

    def close(self) -> None:
        for fake in (self.openai, self.claude):
            asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def headers_seen(self) -> list[dict[str, str]]:
        fakes: list[FakeServer] = [self.openai, self.claude]
        return [request.headers for fake in fakes for request in fake.requests]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    try:
        yield ups
    finally:
        ups.close()


def config(ups: Upstreams, db: Path, *, failed_per_minute: int = 1000, debug: bool = False
           ) -> str:
    logging = '[logging]\nlevel = "debug"\ndebug_bodies = true\n' if debug else ""
    return LOOPBACK_SERVER + logging + f"""
[auth]
mode = "keys"
master_key = "${{MODELMUX_MASTER_KEY}}"
sqlite_path = "{db}"
failed_auth_per_minute = {failed_per_minute}

[[provider]]
name = "up"
type = "openai_compatible"
base_url = "{ups.openai.origin}/v1"
api_key = "sk-upstream-openai"
models = ["gpt-4o", "gpt-4o-mini", "o3"]

[[provider]]
name = "claude"
type = "anthropic"
base_url = "{ups.claude.origin}"
api_key = "sk-ant-upstream"
models = ["claude-sonnet-4-5"]
max_retries = 0

[models]
fast = "gpt-4o-mini"
"""


def serve(home: Path, text: str, extra: list[str] | None = None) -> ServeProcess:
    path = home / "config.toml"
    path.write_text(text)
    return ServeProcess(["serve", "--config", str(path), *(extra or [])], home=home,
                        env={"MODELMUX_MASTER_KEY": MASTER})


def call(proc: ServeProcess, method: str, path: str, body: Any = None,
         token: str | None = MASTER) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                     headers=headers)
        response = conn.getresponse()
        raw = response.read()
        ctype = response.getheader("content-type") or ""
        return response.status, json.loads(raw) if "json" in ctype else raw.decode()
    finally:
        conn.close()


def sdk(proc: ServeProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.url + "/v1", api_key=key, max_retries=0, timeout=10)


def chat(client: openai.OpenAI, model: str = "gpt-4o") -> str:
    answer = client.chat.completions.create(model=model,
                                            messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams
            ) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp("auth")
    proc = serve(home, config(upstreams, home / "modelmux.db", debug=True))  # logs all it can
    try:
        yield proc
    finally:
        assert proc.stop() == 0


def new_key(proc: ServeProcess, **body: Any) -> dict[str, Any]:
    status, created = call(proc, "POST", "/admin/keys", body)
    assert status == 201, created
    return created  # type: ignore[no-any-return]


def test_missing_unknown_revoked_and_expired_keys_are_401(gateway: ServeProcess) -> None:
    good = new_key(gateway, name="good")
    revoked = new_key(gateway, name="revoked")
    expired = new_key(gateway, name="expired", expires_at=1.0)
    assert call(gateway, "DELETE", f"/admin/keys/{revoked['id']}")[0] == 200
    assert chat(sdk(gateway, good["key"])) != ""
    status, body = call(gateway, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}]}, token=None)  # the SDK refuses to send no key
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    for key in ("sk-mm-not-a-key", revoked["key"], expired["key"]):
        with pytest.raises(openai.AuthenticationError) as caught:
            chat(sdk(gateway, key))
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):  # embeddings is behind the same stage
        sdk(gateway, "sk-mm-nope").embeddings.create(model="gpt-4o", input="x")


def test_model_outside_the_keys_or_teams_list_is_403_and_models_are_filtered(
        gateway: ServeProcess) -> None:
    status, team = call(gateway, "POST", "/admin/teams", {"name": "research",
                                                          "models": ["gpt-4o*", "fast"]})
    assert status == 201 and team["id"]
    key = new_key(gateway, name="narrow", team="research", models=["gpt-4o", "fast"])
    client = sdk(gateway, key["key"])
    assert chat(client, "gpt-4o") != "" and chat(client, "fast") != ""
    for model in ("o3", "claude-sonnet-4-5"):
        with pytest.raises(openai.PermissionDeniedError) as caught:
            chat(client, model)
        assert caught.value.status_code == 403 and caught.value.code == "model_not_allowed"
    assert sorted(m.id for m in client.models.list()) == ["fast", "gpt-4o"]
    assert "o3" in {m.id for m in sdk(gateway, MASTER).models.list()}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("o3")


def test_messages_door_answers_401_in_anthropics_shape(gateway: ServeProcess) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-mm-wrong", max_retries=0,
                             timeout=10) as client, \
            pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    key = new_key(gateway, name="claude-only", models=["gpt-4o"])
    with anthropic.Anthropic(base_url=gateway.url, api_key=key["key"], max_retries=0,
                             timeout=10) as client, pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])


def test_the_clients_key_reaches_no_provider_and_no_log(gateway: ServeProcess,
                                                        upstreams: Upstreams) -> None:
    key = new_key(gateway, name="secretive")
    secret = key["key"]
    assert chat(sdk(gateway, secret)) != ""
    with anthropic.Anthropic(base_url=gateway.url, api_key=secret, max_retries=0,
                             timeout=10) as client:  # x-api-key, to the native passthrough
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
        client.messages.count_tokens(model="claude-sonnet-4-5",
                                     messages=[{"role": "user", "content": "hi"}])
    seen = upstreams.headers_seen()
    assert len(seen) >= 3
    for headers in seen:
        assert all(secret not in value and MASTER not in value for value in headers.values())
    call(gateway, "GET", "/admin/keys")
    assert gateway.wait_for_log("upstream POST")  # debug_bodies logged the upstream calls
    assert not any(secret in line or MASTER in line for line in gateway.lines)


def test_admin_api_needs_an_admin_and_keeps_team_admins_to_their_team(
        gateway: ServeProcess) -> None:
    user = new_key(gateway, name="plain")
    status, body = call(gateway, "GET", "/admin/keys", token=user["key"])
    assert status == 403 and body["error"]["type"] == "permission_error"
    assert call(gateway, "GET", "/admin/keys", token=None)[0] == 401
    assert call(gateway, "GET", "/admin/providers", token=user["key"])[0] == 403
    assert call(gateway, "GET", "/admin/providers")[0] == 200
    _, team = call(gateway, "POST", "/admin/teams", {"name": "ops"})
    boss = new_key(gateway, name="ops-admin", team="ops", role="team_admin")
    status, made = call(gateway, "POST", "/admin/keys", {"name": "ops-1"}, token=boss["key"])
    assert status == 201 and made["team_id"] == team["id"]
    _, listed = call(gateway, "GET", "/admin/keys", token=boss["key"])
    assert {k["team_id"] for k in listed["data"]} == {team["id"]}
    assert all("key" not in k and "hash" not in k for k in listed["data"])
    assert call(gateway, "GET", f"/admin/keys/{user['id']}", token=boss["key"])[0] == 404
    assert call(gateway, "POST", "/admin/teams", {"name": "x"}, token=boss["key"])[0] == 403
    for role in ("viewer", "admin"):  # a viewer reads every team: not a team admin's to give
        assert call(gateway, "POST", "/admin/keys", {"role": role}, token=boss["key"])[0] == 403
        status, _ = call(gateway, "PATCH", f"/admin/keys/{made['id']}", {"role": role},
                         token=boss["key"])
        assert status == 403
    status, deputy = call(gateway, "POST", "/admin/keys", {"role": "team_admin"},
                          token=boss["key"])
    assert status == 201 and deputy["team_id"] == team["id"]
    status, shown = call(gateway, "GET", f"/admin/keys/{made['id']}")
    assert status == 200 and shown["prefix"] == made["key"][:12] and "key" not in shown
    status, changed = call(gateway, "PATCH", f"/admin/keys/{made['id']}", {"rpm": 9})
    assert status == 200 and changed["rpm"] == 9
    status, rotated = call(gateway, "POST", f"/admin/keys/{made['id']}/rotate")
    assert status == 201 and rotated["key"] != made["key"]
    with pytest.raises(openai.AuthenticationError):
        chat(sdk(gateway, made["key"]))
    assert chat(sdk(gateway, rotated["key"])) != ""


def test_a_viewer_reads_every_admin_route_and_changes_nothing(gateway: ServeProcess) -> None:
    viewer = new_key(gateway, name="auditor", role="viewer")["key"]
    other = new_key(gateway, name="someone-elses")
    for path in ("/admin/keys", "/admin/teams", "/admin/users", f"/admin/keys/{other['id']}",
                 "/admin/usage", "/admin/providers", "/admin/config", "/metrics"):
        status, body = call(gateway, "GET", path, token=viewer)
        assert status == 200, (path, body)
    _, listed = call(gateway, "GET", "/admin/keys", token=viewer)
    assert other["id"] in {k["id"] for k in listed["data"]}  # every team's, not one
    assert all("key" not in k and "hash" not in k for k in listed["data"])
    for method, path, body in (("POST", "/admin/keys", {"name": "x"}),
                               ("POST", "/admin/teams", {"name": "viewers-team"}),
                               ("PATCH", f"/admin/keys/{other['id']}", {"rpm": 1}),
                               ("DELETE", f"/admin/keys/{other['id']}", None),
                               ("POST", f"/admin/keys/{other['id']}/rotate", None),
                               ("POST", "/admin/breaker", {"deployment": "up/gpt-4o",
                                                           "state": "open"})):
        status, answer = call(gateway, method, path, body, token=viewer)
        assert status == 403 and answer["error"]["type"] == "permission_error", (path, answer)
    assert call(gateway, "GET", f"/admin/keys/{other['id']}")[1]["revoked_at"] is None
    assert chat(sdk(gateway, viewer)) != ""  # and calls models


def test_metrics_need_a_viewer_and_health_tells_strangers_only_the_status(
        gateway: ServeProcess) -> None:
    status, health = call(gateway, "GET", "/health", token=None)
    assert status == 200 and health == {"status": "ok"}
    status, health = call(gateway, "GET", "/health")
    assert status == 200 and "pid" in health and "version" in health
    assert call(gateway, "GET", "/metrics", token=None)[0] == 401
    assert call(gateway, "GET", "/metrics", token=new_key(gateway, name="u")["key"])[0] == 403
    viewer = new_key(gateway, name="dash", role="viewer")
    status, text = call(gateway, "GET", "/metrics", token=viewer["key"])
    assert status == 200 and "modelmux_auth_failures_total" in text


@pytest.mark.parametrize("public", [True, False])
def test_metrics_public_needs_no_credential_and_private_does(tmp_path: Path,
                                                             upstreams: Upstreams,
                                                             public: bool) -> None:
    text = (config(upstreams, tmp_path / "keys.db")
            + f"\n[metrics]\npublic = {str(public).lower()}\n")
    proc = serve(tmp_path, text)
    try:
        user = new_key(proc, name="plain")["key"]
        anonymous, as_user = (call(proc, "GET", "/metrics", token=token)[0]
                              for token in (None, user))
        assert (anonymous, as_user) == ((200, 200) if public else (401, 403))
        status, body = call(proc, "GET", "/metrics", token=None if public else MASTER)
        assert status == 200 and "modelmux_auth_failures_total" in body
        assert call(proc, "GET", "/admin/keys", token=None)[0] == 401  # only /metrics opens
    finally:
        assert proc.stop() == 0


def test_failed_authentications_are_throttled_and_counted(tmp_path: Path,
                                                          upstreams: Upstreams) -> None:
    proc = serve(tmp_path, config(upstreams, tmp_path / "db.sqlite", failed_per_minute=3))
    try:
        key = new_key(proc, name="k")
        for _ in range(3):
            with pytest.raises(openai.AuthenticationError):
                chat(sdk(proc, "sk-mm-guess"))
        with pytest.raises(openai.RateLimitError) as caught:
            chat(sdk(proc, key["key"]))
        assert caught.value.status_code == 429
        assert int(caught.value.response.headers["retry-after"]) > 0
        assert proc.wait_for_log("429")
    finally:
        assert proc.stop() == 0
    proc = serve(tmp_path, config(upstreams, tmp_path / "db.sqlite"))
    try:  # a fresh process: count the refusals of one more failure
        with pytest.raises(openai.AuthenticationError):
            chat(sdk(proc, "sk-mm-guess"))
        _, text = call(proc, "GET", "/metrics")
        assert 'modelmux_auth_failures_total{reason="unknown"} 1' in text
    finally:
        assert proc.stop() == 0


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELMUX_")}
    env.update(HOME=str(home), MODELMUX_MASTER_KEY=MASTER)
    return subprocess.run([*modelmux_command(), *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_keys_made_by_the_cli_survive_a_restart(tmp_path: Path, upstreams: Upstreams) -> None:
    db = tmp_path / "keys.db"
    proc = serve(tmp_path, config(upstreams, db))
    try:
        made = cli(tmp_path, "teams", "create", "lab", "--models", "gpt-*", "--url", proc.url)
        assert made.returncode == 0, made.stderr
        made = cli(tmp_path, "keys", "create", "--name", "ci", "--team", "lab", "--url", proc.url)
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)
        assert "shown only now" in made.stderr
        assert chat(sdk(proc, created["key"])) != ""
    finally:
        assert proc.stop() == 0
    listed = cli(tmp_path, "keys", "list", "--store", "--config", str(tmp_path / "config.toml"))
    assert listed.returncode == 0, listed.stderr
    assert [k["id"] for k in json.loads(listed.stdout)] == [created["id"]]
    assert created["key"] not in listed.stdout
    proc = serve(tmp_path, config(upstreams, db))
    try:
        assert chat(sdk(proc, created["key"])) != ""
        revoked = cli(tmp_path, "keys", "revoke", created["id"], "--url", proc.url)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(openai.AuthenticationError):
            chat(sdk(proc, created["key"]))
    finally:
        assert proc.stop() == 0


def test_a_team_still_in_use_or_a_taken_name_is_a_409_in_the_api_and_the_cli(
        gateway: ServeProcess, tmp_path: Path) -> None:
    assert call(gateway, "POST", "/admin/teams", {"name": "busy"})[0] == 201
    status, body = call(gateway, "POST", "/admin/teams", {"name": "busy"})
    assert status == 409 and body["error"]["code"] == "already_exists"
    key = new_key(gateway, name="in-busy", team="busy")
    status, body = call(gateway, "DELETE", "/admin/teams/busy")
    assert status == 409 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "conflict" and "1 active key" in body["error"]["message"]
    by_api = cli(tmp_path, "teams", "delete", "busy", "--url", gateway.url)
    by_store = cli(tmp_path, "teams", "delete", "busy", "--store", "--config",
                   str(gateway_config(gateway)))
    for done in (by_api, by_store):
        assert done.returncode == 1 and "active key" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "internal" not in done.stderr
    assert "409" in by_api.stderr
    assert call(gateway, "DELETE", f"/admin/keys/{key['id']}")[0] == 200
    assert call(gateway, "DELETE", "/admin/teams/busy")[0] == 200
    assert call(gateway, "GET", "/health")[0] == 200


def test_the_cli_sets_metadata_and_refuses_bad_json(gateway: ServeProcess,
                                                    tmp_path: Path) -> None:
    made = cli(tmp_path, "keys", "create", "--name", "tagged", "--metadata",
               '{"owner": "ml", "cost_center": 7}', "--url", gateway.url)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["metadata"] == {"owner": "ml", "cost_center": 7}
    changed = cli(tmp_path, "keys", "update", key["id"], "--metadata", '{"owner": "ops"}',
                  "--store", "--config", str(gateway_config(gateway)))
    assert changed.returncode == 0, changed.stderr
    assert call(gateway, "GET", f"/admin/keys/{key['id']}")[1]["metadata"] == {"owner": "ops"}
    for bad, said in (("{owner: ml}", "not valid JSON"), ('["ml"]', "must be a JSON object")):
        refused = cli(tmp_path, "keys", "update", key["id"], "--metadata", bad,
                      "--url", gateway.url)
        assert refused.returncode == 2 and f"--metadata: {said}" in refused.stderr


def gateway_config(proc: ServeProcess) -> Path:
    """The config file ``serve`` was started with."""
    args = proc.proc.args
    assert isinstance(args, list)
    return Path(args[args.index("--config") + 1])


def test_refuses_to_serve_unauthenticated_on_a_public_address(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELMUX_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([*modelmux_command(), "serve", "--config", str(path), "--host",
                           "0.0.0.0", "--port", "0"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "allow_unauthenticated" in done.stderr and "listening on" not in done.stderr


def test_keys_keep_working_across_a_reload(tmp_path: Path, upstreams: Upstreams) -> None:
    text = config(upstreams, tmp_path / "keys.db")
    proc = serve(tmp_path, text)
    try:
        key = new_key(proc, name="steady", models=["gpt-4o", "smart"])
        client = sdk(proc, key["key"])
        assert chat(client) != ""
        (tmp_path / "config.toml").write_text(text + 'smart = "gpt-4o"\n')
        proc.proc.send_signal(signal.SIGHUP)
        for _ in range(200):  # the signal is handled asynchronously; bounded wait
            if "smart" in {m.id for m in client.models.list()}:
                break
            time.sleep(0.02)
        assert sorted(m.id for m in client.models.list()) == ["gpt-4o", "smart"]
        assert chat(client, "smart") != ""  # the new App's store finds the key
        assert call(proc, "DELETE", f"/admin/keys/{key['id']}")[0] == 200
        with pytest.raises(openai.AuthenticationError):
            chat(client)
    finally:
        assert proc.stop() == 0


def test_a_store_that_cannot_open_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a file where the database's folder should be
    path.write_text(LOOPBACK_SERVER + f'[auth]\nmode = "keys"\nsqlite_path = "{blocker}/db"\n'
                    '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELMUX_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([*modelmux_command(), "serve", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert "cannot open the [auth] sqlite store" in done.stderr
    assert "listening on" not in done.stderr
