"""The example plugin through a real ``modelmux serve`` and the official openai SDK: the echo
provider type answers with the text the redact middleware left, a plugin that raises gives a
500 naming it in the door's own shape (or, once a stream started, an error event naming it)
while the server keeps serving, and a plugin that is missing or broken stops start-up."""

from __future__ import annotations

import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from modelmux.config.providers import ProviderConfig
from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess, modelmux_command
from tests.plugins.helpers import serve

CONFIG = """
[[provider]]
name = "parrot"
type = "echo"
models = ["echo"]
prefix = "you said: "
chunks = 4
fail_on = "explode"
fail_midway = "halfway"

[[middleware]]
name = "redact"
[middleware.options]
replacement = "[hidden]"
fail_on = "boom"
"""
ASKED = "mail bob@example.com or call 5551234, thanks"
REDACTED = "you said: mail [hidden] or call [hidden], thanks"

BUILT_IN = ", ".join(m.__struct_config__.tag for m in typing.get_args(ProviderConfig))
"""The built-in provider types, in the order the schema declares them."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, example_site: Path) -> Iterator[ServeProcess]:
    proc = serve(tmp_path_factory.mktemp("home"), example_site, CONFIG)
    try:
        yield proc
    finally:
        assert proc.stop() == 0


@pytest.fixture
def sdk(server: ServeProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                       timeout=10) as client:
        yield client


def ask(sdk: openai.OpenAI, text: str, stream: bool = False) -> str:
    messages: list = [{"role": "user", "content": text}]
    if not stream:
        answer = sdk.chat.completions.create(model="echo", messages=messages)
        assert answer.choices[0].finish_reason == "stop"
        return answer.choices[0].message.content or ""
    chunks = list(sdk.chat.completions.create(model="echo", messages=messages, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_echo_provider_answers_with_the_redacted_text(server: ServeProcess, sdk: openai.OpenAI,
                                                          stream: bool) -> None:
    assert ask(sdk, ASKED, stream) == REDACTED
    assert server.wait_for_log("redact: answer"), "\n".join(server.lines)
    assert not any("bob@example.com" in line for line in server.lines)


@pytest.mark.parametrize(("text", "plugin"), [("boom", "redact"), ("explode", "echo")])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_plugin_that_raises_is_a_500_naming_it_and_the_server_keeps_serving(
        server: ServeProcess, sdk: openai.OpenAI, text: str, plugin: str, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(sdk, f"please {text} now", stream)
    assert caught.value.status_code == 500
    assert caught.value.body == {"message": f"The {plugin!r} plugin failed: RuntimeError.",
                                 "type": "server_error", "code": "plugin_error", "param": None}
    assert server.wait_for_log(f"plugin {plugin} "), "\n".join(server.lines)
    assert ask(sdk, "call 1234", stream) == "you said: call [hidden]"


def test_the_echo_providers_embed_is_served_with_the_redacted_inputs(
        server: ServeProcess, sdk: openai.OpenAI) -> None:
    answer = sdk.embeddings.create(model="echo", input=["call 5551234 now", "hello"])
    assert [item.embedding for item in answer.data] == [[len("call [hidden] now"), 3.0],
                                                        [5.0, 1.0]]
    assert answer.model == "echo"


@pytest.fixture
def claude_sdk(server: ServeProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0,
                             timeout=10) as client:
        yield client


def ask_claude(sdk: anthropic.Anthropic, text: str, stream: bool) -> str:
    messages: list = [{"role": "user", "content": text}]
    if not stream:
        answer = sdk.messages.create(model="echo", max_tokens=50, messages=messages)
        return "".join(block.text for block in answer.content if block.type == "text")
    with sdk.messages.stream(model="echo", max_tokens=50, messages=messages) as events:
        return events.get_final_text()


NAMED = "The 'echo' plugin failed: RuntimeError."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_provider_plugin_that_raises_is_an_anthropic_500_naming_it_on_the_messages_door(
        server: ServeProcess, claude_sdk: anthropic.Anthropic, stream: bool) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        ask_claude(claude_sdk, "please explode now", stream)
    assert caught.value.status_code == 500
    assert caught.value.body == {"type": "error",
                                 "error": {"type": "api_error", "message": NAMED}}
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert server.wait_for_log("plugin echo (provider parrot) failed on request")
    assert ask_claude(claude_sdk, "call 1234", stream) == "you said: call [hidden]"


def test_a_provider_plugin_failing_midway_ends_the_chat_stream_with_an_error_naming_it(
        server: ServeProcess, sdk: openai.OpenAI) -> None:
    got: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in sdk.chat.completions.create(
                model="echo", stream=True,
                messages=[{"role": "user", "content": "stop halfway please"}]):
            got.append(chunk.choices[0].delta.role or "" if chunk.choices else "")
    assert got == ["assistant"]  # the first chunk came before the failure
    assert caught.value.message == NAMED
    assert caught.value.body == {"message": NAMED, "type": "server_error",
                                 "code": "plugin_error", "param": None}
    assert server.wait_for_log("plugin echo (provider parrot) failed on request")
    assert ask(sdk, "call 1234", True) == "you said: call [hidden]"


def test_a_provider_plugin_failing_midway_ends_the_messages_stream_with_an_error_event(
        server: ServeProcess, claude_sdk: anthropic.Anthropic) -> None:
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, claude_sdk.messages.stream(
            model="echo", max_tokens=50,
            messages=[{"role": "user", "content": "stop halfway please"}]) as events:
        kinds.extend(event.type for event in events)
    assert kinds[:1] == ["message_start"]  # the stream had started
    assert caught.value.body == {"type": "error",
                                 "error": {"type": "api_error", "message": NAMED}}
    assert server.wait_for_log("plugin echo (provider parrot) failed on request")
    assert ask_claude(claude_sdk, "call 1234", True) == "you said: call [hidden]"


@pytest.mark.parametrize(("config", "needle"), [
    (CONFIG.replace('name = "redact"', 'name = "scrub"'),
     "middleware[0].name: no middleware plugin named 'scrub' is installed "
     "(installed modelmux.middleware entry points: redact)"),
    (CONFIG.replace('type = "echo"', 'type = "ekko"'),
     f"provider[0].type: `type` must be one of {BUILT_IN}, or "
     "the name of an installed provider plugin (modelmux.providers entry points: echo)"),
])
def test_a_plugin_that_is_not_installed_stops_start_up_with_exit_2(
        tmp_path: Path, example_site: Path, config: str, needle: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LOOPBACK_SERVER + config)
    done = subprocess.run([*modelmux_command(), "serve", "--config", str(path)],
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "PYTHONPATH": str(example_site)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "invalid configuration" in done.stderr and needle in done.stderr
    checked = subprocess.run([*modelmux_command(), "config", "validate", str(path)],
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                  "PYTHONPATH": str(example_site)},
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and needle in checked.stderr


def test_a_reload_naming_a_missing_plugin_is_rejected_and_the_old_config_serves(
        tmp_path: Path, example_site: Path) -> None:
    path, control = tmp_path / "config.toml", tmp_path / "control.sock"
    path.write_text(LOOPBACK_SERVER + CONFIG)
    proc = ServeProcess(["serve", "--config", str(path), "--control-socket", str(control)],
                        env={"PYTHONPATH": str(example_site)}, home=tmp_path)
    try:
        path.write_text(LOOPBACK_SERVER + CONFIG.replace('name = "redact"', 'name = "scrub"'))
        done = subprocess.run([*modelmux_command(), "reload", "--control-socket", str(control)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "rejected" in done.stderr and "no middleware plugin named 'scrub'" in done.stderr
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0,
                           timeout=10) as client:
            assert ask(client, ASKED) == REDACTED
    finally:
        assert proc.stop() == 0
