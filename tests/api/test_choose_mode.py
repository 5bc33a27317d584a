"""``choose_mode``: every mode, every auto rule, the override header; no sockets."""

from __future__ import annotations

import pytest

from modelmux.api.streaming import MODE_HEADER, choose_mode, parse_pattern
from modelmux.config.schema import StreamingConfig
from modelmux.errors import InvalidRequest

AUTO = StreamingConfig()
CHROME = (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          b"Chrome/124.0.0.0 Safari/537.36")
GOOSE_1X = ["goose", "openai-organization: basebox", "openai-project: gui"]

BROWSERS_AND_IDES = [
    pytest.param(CHROME, "chrome", id="chrome"),
    pytest.param(b"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                 "firefox", id="firefox"),
    pytest.param(b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
                 b"(KHTML, like Gecko) Version/17.4 Safari/605.1.15", "safari", id="safari"),
    pytest.param(b"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Edge/18.19045", "edge",
                 id="edge-legacy"),
    pytest.param(CHROME + b" Edg/124.0.0.0", "chrome", id="edge-chromium"),
    pytest.param(b"VSCode/1.89.1", "vscode", id="vscode"),
    pytest.param(b"Visual Studio Code/1.89", "visual studio code", id="visual-studio-code"),
    pytest.param(b"IntelliJ IDEA/2024.1", "intellij", id="intellij"),
    pytest.param(b"PyCharm/2024.1.1", "pycharm", id="pycharm"),
    pytest.param(b"WebStorm/2024.1", "webstorm", id="webstorm"),
    pytest.param(b"GoLand/2024.1", "goland", id="goland"),
    pytest.param(b"RustRover/2024.1", "rustrover", id="rustrover"),
    pytest.param(b"CLion/2024.1", "clion", id="clion"),
    pytest.param(b"PhpStorm/2024.1", "phpstorm", id="phpstorm"),
    pytest.param(b"Rider/2024.1", "rider", id="rider"),
    pytest.param(b"DataGrip/2024.1", "datagrip", id="datagrip"),
    pytest.param(b"JetBrains-AI-Assistant/241.1", "jetbrains", id="jetbrains"),
]

STREAMING_CLIENTS = [
    pytest.param(b"OpenAI/Python 1.40.0", id="openai-python"),
    pytest.param(b"AsyncOpenAI/Python 3.54.0", id="openai-python-async"),
    pytest.param(b"OpenAI/JS 4.52.0", id="openai-js"),
    pytest.param(b"curl/8.5.0", id="curl"),
    pytest.param(b"python-requests/2.32.3", id="requests"),
    pytest.param(b"python-httpx/0.27.0", id="httpx"),
    pytest.param(b"knowledge-bot/1.0", id="edge-inside-a-word"),
    pytest.param(b"cloud-provider-sdk/2.0", id="rider-inside-a-word"),
    pytest.param(None, id="no-user-agent"),
]


def choose(config: StreamingConfig = AUTO, *, asked: bool = True, ua: bytes | None = None,
           headers: list[tuple[bytes, bytes]] | None = None, override: bytes | None = None):
    return choose_mode(config, asked_stream=asked, user_agent=ua, headers=headers or [],
                       override=override)


@pytest.mark.parametrize(("ua", "family"), BROWSERS_AND_IDES)
def test_auto_buffers_browsers_and_ides(ua: bytes, family: str) -> None:
    mode, reason = choose(ua=ua)
    assert mode == "buffered"
    assert family in reason


@pytest.mark.parametrize("ua", STREAMING_CLIENTS)
def test_auto_streams_everything_else(ua: bytes | None) -> None:
    assert choose(ua=ua)[0] == "standard"


def test_official_sdk_streams_although_it_accepts_only_json() -> None:
    headers = [(b"accept", b"application/json"), (b"user-agent", b"OpenAI/Python 1.40.0"),
               (b"x-stainless-lang", b"python")]
    mode, reason = choose(ua=b"OpenAI/Python 1.40.0", headers=headers)
    assert (mode, reason) == ("standard", "auto: streaming client")


@pytest.mark.parametrize("ua", [
    pytest.param(b"PostmanRuntime/7.39.0", id="postman"),
    pytest.param(b"insomnia/2023.5.8", id="insomnia"),
    pytest.param(b"Thunder Client (https://www.thunderclient.com)", id="thunder-client"),
    pytest.param(b"thunderclient/2.0", id="thunderclient"),
    pytest.param(b"Goose/1.0 (block.xyz)", id="goose-ua"),
    pytest.param(b"PostmanRuntime/7.39.0 " + CHROME, id="never-beats-buffered"),
])
def test_auto_never_streams_default_never_clients(ua: bytes) -> None:
    mode, reason = choose(ua=ua)
    assert mode == "never"
    assert reason.startswith("auto: never_clients pattern")


@pytest.mark.parametrize("headers", [
    pytest.param([(b"openai-organization", b"BaseBox-team")], id="organization"),
    pytest.param([(b"openai-project", b"goose-GUI")], id="project"),
])
def test_goose_recognised_by_its_headers_as_in_1x(headers: list[tuple[bytes, bytes]]) -> None:
    config = StreamingConfig(never_clients=GOOSE_1X)
    assert choose(config, ua=b"reqwest/0.12", headers=headers)[0] == "never"
    other = [(b"openai-project", b"proj_42")]
    assert choose(config, ua=b"reqwest/0.12", headers=other)[0] == "standard"


def test_default_never_clients_recognise_goose_headers() -> None:
    assert choose(headers=[(b"openai-organization", b"basebox")])[0] == "never"


def test_header_pattern_matches_only_that_header() -> None:
    config = StreamingConfig(never_clients=["x-client: goose"])
    mode, reason = choose(config, ua=b"curl/8", headers=[(b"x-client", b"Goose-Desktop/1.2")])
    assert mode == "never" and "'x-client: goose'" in reason
    assert choose(config, ua=b"goose/1.0")[0] == "standard"
    assert choose(config, headers=[(b"x-other", b"goose")])[0] == "standard"
    assert choose(config, headers=[(b"x-client", b"a"), (b"x-client", b"goose")])[0] == "never"


def test_pattern_with_empty_value_matches_presence_and_empty_list_disables() -> None:
    config = StreamingConfig(never_clients=["X-Goose:"])
    assert choose(config, headers=[(b"x-goose", b"")])[0] == "never"
    assert choose(config)[0] == "standard"
    assert choose(StreamingConfig(never_clients=[]), ua=b"PostmanRuntime/7")[0] == "standard"


def test_parse_pattern() -> None:
    assert parse_pattern("Goose").header == b"user-agent"
    assert parse_pattern("Goose").needle == "goose"
    assert parse_pattern(" X-Client : Goose ")[:2] == (b"x-client", "goose")
    assert parse_pattern("thunder client: v2")[:2] == (b"user-agent", "thunder client: v2")


@pytest.mark.parametrize("mode", ["auto", "standard", "buffered", "never"])
def test_no_stream_asked_means_json_unless_always(mode: str) -> None:
    config = StreamingConfig(mode=mode)  # type: ignore[arg-type]
    expected = ("never", "the client did not ask for a stream")
    assert choose(config, asked=False, ua=CHROME) == expected


@pytest.mark.parametrize("asked", [True, False])
def test_always_streams_standard(asked: bool) -> None:
    mode, reason = choose(StreamingConfig(mode="always"), asked=asked, ua=CHROME)
    assert mode == "standard"
    assert reason.startswith("streaming.mode = always")
    assert ("did not ask" in reason) is not asked


@pytest.mark.parametrize("mode", ["standard", "buffered", "never"])
@pytest.mark.parametrize("ua", [CHROME, b"PostmanRuntime/7", b"OpenAI/Python 1.40.0"])
def test_fixed_modes_ignore_the_client(mode: str, ua: bytes) -> None:
    config = StreamingConfig(mode=mode)  # type: ignore[arg-type]
    assert choose(config, ua=ua) == (mode, f"streaming.mode = {mode}")


@pytest.mark.parametrize(("value", "asked", "expected"), [
    (b"standard", True, "standard"),
    (b"buffered", True, "buffered"),
    (b"never", True, "never"),
    (b"always", True, "standard"),
    (b"always", False, "standard"),
    (b"standard", False, "never"),
    (b" Buffered ", True, "buffered"),
    (b"NEVER", True, "never"),
])
def test_override_header_replaces_the_configured_mode(
    value: bytes, asked: bool, expected: str
) -> None:
    for config in (StreamingConfig(mode="never"), StreamingConfig(mode="always"), AUTO):
        mode, reason = choose(config, asked=asked, ua=CHROME, override=value)
        assert mode == expected
        assert reason.startswith(MODE_HEADER.decode()) or (
            not asked and reason == "the client did not ask for a stream")


def test_override_auto_applies_the_auto_rules() -> None:
    config = StreamingConfig(mode="never")
    assert choose(config, ua=CHROME, override=b"auto")[0] == "buffered"
    assert choose(config, ua=b"OpenAI/Python 1.40.0", override=b"auto")[0] == "standard"
    assert choose(config, ua=b"PostmanRuntime/7", override=b"auto")[0] == "never"


@pytest.mark.parametrize("value", [b"fast", b"", b"true", b"non-streaming", b"\xff\xfe"])
def test_invalid_override_is_a_400_naming_the_header(value: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        choose(override=value)
    error = info.value
    assert error.status == 400 and error.type == "invalid_request_error"
    assert error.param == "x-modelmux-stream-mode"
    assert "x-modelmux-stream-mode" in error.message
    assert "auto, standard, buffered, never, always" in error.message


def test_invalid_override_is_rejected_even_for_json_clients() -> None:
    with pytest.raises(InvalidRequest):
        choose(asked=False, override=b"sometimes")
