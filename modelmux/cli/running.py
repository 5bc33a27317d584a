"""The serving process's place on the machine: its control socket, pid file and readiness.

``Running`` claims the control socket (``modelmux reload`` / ``upgrade``) and the pid file and
tells systemd it is ready, at start or, for an upgrade's successor, once its predecessor lets
go. ``Stopping`` records how the process was asked to stop: by a signal, or by a hand-over.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from modelmux.cli.upgrader import Upgrader
from modelmux.server.control import Command, ControlServer, Session
from modelmux.server.control import default_path as control_path
from modelmux.server.handoff import Takeover
from modelmux.server.notify import notify
from modelmux.server.pidfile import remove_pid, write_pid

log = logging.getLogger("modelmux")


class Stopping:
    """How this process is asked to stop: by a signal, or by handing over to an upgrade."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.handover = False

    def now(self) -> None:
        self.event.set()

    def hand_over(self) -> None:
        self.handover = True
        self.event.set()


async def start_control(ns: argparse.Namespace, commands: dict[str, Command],
                        sessions: dict[str, Session]) -> ControlServer | None:
    """The control socket for ``modelmux reload`` and ``upgrade``, unless ``--control-socket off``.

    A successor binds the path its predecessor used (``--upgrade-from``).
    """
    if ns.control_socket == "off":
        return None
    path = Path(ns.control_socket or ns.upgrade_from or control_path())
    server = ControlServer(path, commands, sessions)
    try:
        await server.start()
    except OSError as exc:
        log.warning("no control socket at %s (%s): `modelmux reload` will not reach this server; "
                    "SIGHUP still reloads", path, exc.strerror or exc)
        return None
    log.info("control socket %s", path)
    return server


class Running:
    """The control socket and pid file of the serving process (server or supervisor).

    A fresh start claims them and tells systemd it is ready; a successor claims them only when
    its predecessor says ``go`` (``Takeover.complete``).
    """

    def __init__(self, ns: argparse.Namespace, commands: dict[str, Command],
                 upgrader: Upgrader) -> None:
        self.ns = ns
        self.commands = commands
        self.upgrader = upgrader
        self.control: ControlServer | None = None
        self.pid_file = Path(ns.pid_file) if ns.pid_file else None

    async def claim(self) -> None:
        self.control = await start_control(self.ns, self.commands, {"handoff": self.upgrader.handoff})
        self.upgrader.control = self.control
        self.upgrader.pid_file = self.pid_file
        if self.pid_file is not None:
            try:
                write_pid(self.pid_file)
            except OSError as exc:
                log.warning("cannot write the pid file %s: %s", self.pid_file, exc.strerror or exc)

    async def start(self, takeover: Takeover | None) -> None:
        """Claim now (and notify systemd), or after the hand-off when taking over.

        Raises:
            HandoffError: the predecessor went away before saying ``go``.
        """
        if takeover is None:
            await self.claim()
            notify("READY=1")
        else:
            await takeover.complete(self.claim)
            log.info("took over from pid %s", takeover.info.get("pid"))

    async def release(self) -> None:
        if self.control is not None:
            await self.control.close()
        if self.pid_file is not None:
            remove_pid(self.pid_file)
