"""Moving 1.x's macOS config folder to the XDG-style one, once (1.x spec §2.8).

1.x kept its files in ``~/Library/Application Support/com.SkyCorp.modelmux`` (or ``.../modelmux``);
2.x reads ``~/.config/modelmux``. The move runs whenever a legacy folder holds a ``config.toml``
and the new folder does not (on any OS: elsewhere the folder simply never exists), never
overwrites a file, and rewrites absolute paths in ``config.toml`` that pointed into the old folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelmux.config.paths import (
    CONFIG_NAME,
    LEGACY_MACOS_NAMES,
    legacy_macos_dirs,
    user_config_dir,
)


@dataclass
class MacMigration:
    """What one migration did."""

    source: Path
    target: Path
    moved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rewritten: bool = False

    def report(self) -> str:
        lines = [f"migrated the ModelMux 1.x configuration from {self.source} to {self.target}",
                 f"  moved: {', '.join(self.moved) or 'nothing'}"]
        if self.rewritten:
            lines.append(f"  rewrote paths in {CONFIG_NAME} that pointed into the old folder")
        if self.skipped:
            lines.append(f"  left in place (already present in the new folder): "
                         f"{', '.join(self.skipped)}")
        return "\n".join(lines)


def legacy_config(environ: Mapping[str, str] | None = None) -> Path | None:
    """The first 1.x macOS ``config.toml`` that exists."""
    for folder in legacy_macos_dirs(environ):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def migrate_legacy_dir(environ: Mapping[str, str] | None = None) -> MacMigration | None:
    """Move the legacy folder's files to the user config folder; None when there is nothing to do.

    Raises:
        OSError: a file could not be moved or the config could not be rewritten.
    """
    target = user_config_dir(environ)
    if (target / CONFIG_NAME).exists():
        return None
    found = legacy_config(environ)
    if found is None:
        return None
    source = found.parent
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = MacMigration(source, target)
    for entry in sorted(source.iterdir()):
        if entry.is_symlink() or not entry.is_file():
            continue
        destination = target / entry.name
        if destination.exists():
            result.skipped.append(entry.name)
            continue
        try:
            os.rename(entry, destination)
        except OSError:
            shutil.copy2(entry, destination)
            try:
                entry.unlink()
            except OSError:
                pass
        result.moved.append(entry.name)
    result.rewritten = rewrite_paths(target / CONFIG_NAME, environ)
    try:
        source.rmdir()
    except OSError:
        pass
    return result


def rewrite_paths(config: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Point paths into either legacy folder (absolute or ``~/...``) at the new folder.

    Raises:
        OSError: the file could not be read or written.
    """
    text = config.read_text(encoding="utf-8")
    target = str(user_config_dir(environ))
    updated = text
    for folder, name in zip(legacy_macos_dirs(environ), LEGACY_MACOS_NAMES):
        for prefix in (str(folder), f"~/Library/Application Support/{name}"):
            pattern = re.escape(prefix) + r"(?=[/\"'\s]|$)"
            updated = re.sub(pattern, lambda _: target, updated)
    if updated == text:
        return False
    temporary = config.with_name(config.name + ".migrating")
    temporary.write_text(updated, encoding="utf-8")
    os.chmod(temporary, config.stat().st_mode & 0o777)
    os.replace(temporary, config)
    return True
