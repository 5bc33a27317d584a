"""``modelmux logs [-f]``: where the log is found, the tail, and following across rotation."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from modelmux.cli.logs import Follower, tail
from modelmux.observability import logs
from tests.cli.helpers import clean_env, run, user_config, write
from tests.e2e.proc import modelmux_command
from tests.logging_state import restored_logging

NUMBERS = "".join(f"line {n}\n" for n in range(1, 101))


def test_no_log_explains_where_logs_go(tmp_path: Path) -> None:
    out = run(tmp_path, "logs")
    assert out.returncode == 0
    assert "journalctl" in out.stdout or "[logging] file" in out.stdout


def test_configured_file_last_lines(tmp_path: Path) -> None:
    write(tmp_path / "logs/mm.log", NUMBERS)
    write(user_config(tmp_path), '[logging]\nfile = "~/logs/mm.log"\n'
          '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    out = run(tmp_path, "logs", "-n", "3")
    assert out.returncode == 0 and out.stdout == "line 98\nline 99\nline 100\n"
    assert str(tmp_path / "logs/mm.log") in out.stderr
    assert run(tmp_path, "logs").stdout.count("\n") == 50


def test_default_state_file_then_1x_dated_files(tmp_path: Path) -> None:
    state = tmp_path / ".local/state/modelmux"
    write(state / "modelmux.log.2025-01-01", "old\n")
    newest = write(state / "modelmux.log.2025-01-02", "newer\n")
    os.utime(newest, (time.time() + 5, time.time() + 5))
    assert run(tmp_path, "logs").stdout == "newer\n"
    write(state / "modelmux.log", "current\n")
    assert run(tmp_path, "logs").stdout == "current\n"


def test_a_configured_file_not_yet_written(tmp_path: Path) -> None:
    out = run(tmp_path, "logs", "--file", str(tmp_path / "later.log"))
    assert out.returncode == 0 and "does not exist yet" in out.stdout


def test_tail_reads_from_the_end_in_blocks(tmp_path: Path) -> None:
    path = write(tmp_path / "x.log", NUMBERS + "partial")
    lines, end = tail(path, 2, block=7)
    assert lines == ["line 100", "partial"] and end == path.stat().st_size


def test_follower_handles_partial_lines_rename_and_truncation(tmp_path: Path) -> None:
    path = write(tmp_path / "x.log", "old\n")
    follower = Follower(path, offset=path.stat().st_size)
    try:
        assert follower.poll() == []
        with open(path, "a") as handle:
            handle.write("one\ntw")
        assert follower.poll() == ["one"]
        with open(path, "a") as handle:
            handle.write("o\nlast-in-old\n")
        path.rename(tmp_path / "x.log.1")
        assert follower.poll() == ["two", "last-in-old"]  # the new file does not exist yet
        write(path, "fresh\n")
        assert follower.poll() == ["fresh"]
        path.write_text("")  # copytruncate-style rotation, noticed at the next poll
        assert follower.poll() == []
        with open(path, "a") as handle:
            handle.write("after truncate\n")
        assert follower.poll() == ["after truncate"]
    finally:
        follower.close()


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the child: a suite started in the background by a shell
    without job control inherits it ignored, and then no Ctrl-C would reach the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_follow_in_a_subprocess_across_rotation(tmp_path: Path) -> None:
    path = write(tmp_path / "svc.log", "before\n")
    proc = subprocess.Popen([*modelmux_command(), "logs", "-f", "--file", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(tmp_path), preexec_fn=_ctrl_c_as_in_a_terminal)
    seen: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def expect(text: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if seen.get(timeout=0.5) == text:
                    return
            except queue.Empty:
                continue
        raise AssertionError(f"{text!r} never shown")

    try:
        expect("before")
        with open(path, "a") as handle:
            handle.write("appended\n")
        expect("appended")
        path.rename(tmp_path / "svc.log.1")
        write(path, "rotated\n")
        expect("rotated")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(15)
        reader.join(15)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_json_format_to_a_file(tmp_path: Path) -> None:
    with restored_logging():
        assert logs.setup("debug", "json", str(tmp_path / "deep/mm.log")) is None
        logging.getLogger("modelmux.test").info("hello %s", "there")
        entry = json.loads((tmp_path / "deep/mm.log").read_text().splitlines()[-1])
        assert entry["message"] == "hello there" and entry["level"] == "info"
        assert "cannot write" in (logs.setup("info", "text", str(tmp_path / "deep")) or "")
