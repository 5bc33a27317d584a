"""1.x's macOS folder moves to ~/.config/modelmux once, rewriting paths (runs on any OS)."""

from __future__ import annotations

from pathlib import Path

from modelmux.config.macos import migrate_legacy_dir
from tests.config.helpers import environ_for, load, write

SUPPORT = "Library/Application Support"


def legacy_config(home: Path, name: str = "com.SkyCorp.modelmux") -> Path:
    folder = home / SUPPORT / name
    write(folder / "service-account.json", "{}")
    return write(folder / "config.toml",
                 f'[server]\nport = 3001\n[auth]\nservice_account_file = "{folder}/service-account.json"\n'
                 f'# also "~/{SUPPORT}/{name}/service-account.json"\n'
                 f'[vertex]\nurl = "https://global/v1/projects/p/locations/global/publishers/'
                 f'anthropic/models/m@1"\n')


def test_moves_files_rewrites_paths_and_removes_the_folder(tmp_path: Path) -> None:
    old = legacy_config(tmp_path)
    done = migrate_legacy_dir(environ_for(tmp_path))
    new = tmp_path / ".config/modelmux"
    assert done is not None and sorted(done.moved) == ["config.toml", "service-account.json"]
    assert done.rewritten and not old.parent.exists()
    text = (new / "config.toml").read_text()
    assert f'"{new}/service-account.json"' in text and f"# also \"{new}/service-account.json\"" in text
    assert SUPPORT not in text


def test_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    legacy_config(tmp_path)
    assert migrate_legacy_dir(environ_for(tmp_path)) is not None
    again = legacy_config(tmp_path)
    assert migrate_legacy_dir(environ_for(tmp_path)) is None  # the new config.toml exists
    assert again.exists()


def test_skips_files_already_in_the_new_folder(tmp_path: Path) -> None:
    legacy_config(tmp_path)
    kept = write(tmp_path / ".config/modelmux/service-account.json", '{"kept": true}')
    done = migrate_legacy_dir(environ_for(tmp_path))
    assert done is not None and done.moved == ["config.toml"] and done.skipped == ["service-account.json"]
    assert kept.read_text() == '{"kept": true}'
    assert (tmp_path / SUPPORT / "com.SkyCorp.modelmux/service-account.json").exists()


def test_the_plain_name_folder_too(tmp_path: Path) -> None:
    legacy_config(tmp_path, "modelmux")
    done = migrate_legacy_dir(environ_for(tmp_path))
    assert done is not None and done.source == tmp_path / SUPPORT / "modelmux"


def test_a_legacy_folder_without_config_is_left_alone(tmp_path: Path) -> None:
    write(tmp_path / SUPPORT / "modelmux/notes.txt", "x")
    assert migrate_legacy_dir(environ_for(tmp_path)) is None
    assert not (tmp_path / ".config/modelmux").exists()


def test_loading_migrates_and_reports_once(tmp_path: Path) -> None:
    legacy_config(tmp_path)
    first = load(tmp_path)
    assert first.notes and "migrated" in first.notes[0]
    assert first.config.server.port == 3001
    assert first.files == [tmp_path / ".config/modelmux/config.toml"]
    assert load(tmp_path).notes == []


def test_a_failed_move_falls_back_to_reading_the_legacy_file(tmp_path: Path) -> None:
    old = legacy_config(tmp_path)
    write(tmp_path / ".config", "a file where the folder should be")  # mkdir fails, even as root
    loaded = load(tmp_path)
    assert loaded.files == [old] and loaded.config.server.port == 3001
    assert any("could not move" in w.message for w in loaded.warnings)
