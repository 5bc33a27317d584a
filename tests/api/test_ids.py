"""Fresh request and completion ids: uuid4-sized hex, distinct, and distinct in a forked child."""

from __future__ import annotations

import os
import re
import warnings

from modelmux.api.ids import new_hex_id


def test_ids_are_32_lower_hex_digits_and_do_not_repeat() -> None:
    ids = [new_hex_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    """``--workers`` children must not hand out their parent's (or each other's) ids."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # newer Pythons warn about fork() with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: write its next id and leave at once
        os.write(write, new_hex_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child) and child != new_hex_id()
