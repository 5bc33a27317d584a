"""The dashboard's files (``modelmux/web/static``), read from the package once, served by name."""

from __future__ import annotations

from importlib.resources import files

TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml",
         ".LICENSE": b"text/plain; charset=utf-8"}


class StaticFiles:
    """The dashboard's files by name, loaded from the package on first use."""

    def __init__(self, package: str = "modelmux.web") -> None:
        self.package = package
        self._files: dict[str, tuple[bytes, bytes]] | None = None

    def get(self, name: str) -> tuple[bytes, bytes] | None:
        """(content type, bytes) of a shipped file, or None (only listed names are served)."""
        if self._files is None:
            found: dict[str, tuple[bytes, bytes]] = {}
            for entry in (files(self.package) / "static").iterdir():
                kind = TYPES.get("." + entry.name.rpartition(".")[2])
                if entry.is_file() and kind is not None:
                    found[entry.name] = (kind, entry.read_bytes())
            self._files = found
        return self._files.get(name)
