"""``benchmarks/profile_layers.py``'s accounting of py-spy's raw output: each sample goes to
its innermost frame's layer, and the loop's own C code to ``event loop``."""

from __future__ import annotations

from benchmarks.profile_layers import charge, layer_of

SITE = "/usr/lib/python3.11/site-packages"
RAW = "\n".join([
    "Runner.run (/usr/lib/python3.11/asyncio/runners.py:118) 40",
    "H1Protocol._run (/srv/modelmux/server/h1.py:194);App._dispatch (/srv/modelmux/api/app.py:156)"
    ";create_chat_completion (/srv/modelmux/api/chat.py:126) 25",
    "H1Protocol._run (/srv/modelmux/server/h1.py:194);H1Protocol.send_head "
    "(/srv/modelmux/server/h1.py:266) 20",
    f"Connection.send (/srv/modelmux/upstream/connection.py:236);H2Connection._receive_frame "
    f"({SITE}/h2/connection.py:1460) 10",
    "Task.__step (/usr/lib/python3.11/asyncio/tasks.py:267) 4",
    "<module> (/srv/modelmux/__main__.py:7) 1",
    "a truncated line without a count",
    "",
])


def test_each_sample_is_charged_to_its_innermost_frame() -> None:
    layers, funcs, total = charge(RAW)
    assert total == 100
    assert layers == {"event loop": 40, "api": 25, "server": 20, "h2": 10, "asyncio": 4,
                      "__main__": 1}
    assert funcs["create_chat_completion (api/chat.py)"] == 25
    assert funcs["H1Protocol.send_head (server/h1.py)"] == 20
    assert funcs["H2Connection._receive_frame (h2/connection.py)"] == 10


def test_layers() -> None:
    assert layer_of("/x/modelmux/routing/router.py", "Router.plan") == "routing"
    assert layer_of("/x/lib/python3.11/asyncio/base_events.py", "BaseEventLoop.run_forever") \
        == "event loop"
    assert layer_of("/x/lib/python3.11/asyncio/base_events.py", "BaseEventLoop.create_task") \
        == "asyncio"
    assert layer_of("/x/site-packages/redis/client.py", "Redis.get") == "other"
