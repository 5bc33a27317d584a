"""The pid file and the systemd notification: the small files and datagrams an upgrade moves."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from modelmux.server.notify import notify
from modelmux.server.pidfile import read_pid, remove_pid, write_pid


def test_pid_file_is_removed_only_by_the_process_it_names(tmp_path: Path) -> None:
    path = tmp_path / "run" / "modelmux.pid"
    write_pid(path)
    assert read_pid(path) == os.getpid()
    write_pid(path, 4242)  # a successor took over
    remove_pid(path)
    assert read_pid(path) == 4242
    remove_pid(path, 4242)
    assert not path.exists() and read_pid(path) is None
    assert [p.name for p in path.parent.iterdir()] == []  # no temporary file left behind


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_one_datagram_to_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     abstract: bool) -> None:
    name = f"modelmux-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        if abstract:
            manager.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        else:
            manager.bind(str(tmp_path / "notify"))
            monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        assert notify("MAINPID=123")
        assert manager.recv(100) == b"MAINPID=123"


def test_notify_without_a_service_manager_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert not notify("READY=1")  # logged, not raised
