"""Reading systemd unit files and checking them with ``systemd-analyze``."""

from __future__ import annotations

from pathlib import Path

from tests.packaging.helpers import clean_env, run


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ``{section: [(key, value), ...]}`` (comments dropped)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


def verify(unit_file: Path, *, user: bool, runtime_dir: Path) -> None:
    """``systemd-analyze verify``; it exits 0 on some warnings, so any remark about the unit fails."""
    cmd = ["systemd-analyze", "verify", "--man=no", "--generators=no"]
    if user:
        cmd.append("--user")
    proc = run([*cmd, str(unit_file)], check=False, env=clean_env(XDG_RUNTIME_DIR=str(runtime_dir)))
    remarks = [line for line in (proc.stdout + proc.stderr).splitlines()
               if unit_file.name in line or "modelmux" in line]
    assert proc.returncode == 0 and not remarks, proc.stdout + proc.stderr


def with_exec_start_binary(unit_file: Path, binary: str, dest_dir: Path) -> Path:
    """A copy of the unit whose ExecStart runs ``binary`` instead of /usr/bin/modelmux.

    ``systemd-analyze verify`` insists that the ExecStart binary exists on this machine; everything
    else in the copy is byte-for-byte the unit under test.
    """
    text = unit_file.read_text()
    assert "\nExecStart=/usr/bin/modelmux " in text
    copy = dest_dir / unit_file.name
    copy.write_text(text.replace("\nExecStart=/usr/bin/modelmux ", f"\nExecStart={binary} "))
    return copy
