"""``modelmux db upgrade`` as a user runs it: a real subprocess, a real SQLite file and a real
PostgreSQL; the DSN's password never printed."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cli.helpers import run, user_config, write
from tests.tenancy.postgres_server import PostgresServer


def test_sqlite_in_the_state_dir_by_default_then_up_to_date(tmp_path: Path) -> None:
    db = tmp_path / ".local/state/modelmux/modelmux.db"
    first = run(tmp_path, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"store: sqlite {db}\ntenancy: version 0 -> 1\nspend: version 0 -> 2\n"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    again = run(tmp_path, "db", "upgrade")
    assert again.returncode == 0 and again.stdout.endswith(
        "tenancy: version 1 (up to date)\nspend: version 2 (up to date)\n")


def test_sqlite_path_from_the_config_and_from_the_flag(tmp_path: Path) -> None:
    write(user_config(tmp_path), '[auth]\nsqlite_path = "~/data/keys.db"\n')
    configured = run(tmp_path, "db", "upgrade")
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.startswith(f"store: sqlite {tmp_path}/data/keys.db\n")
    flagged = run(tmp_path, "db", "upgrade", "--sqlite-path", str(tmp_path / "other.db"))
    assert flagged.returncode == 0 and (tmp_path / "other.db").is_file()


def test_postgres_dsn_from_the_environment_with_the_password_hidden(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    dsn = postgres_server.database().replace("postgres@", "postgres:s3cret-pw@")
    write(user_config(tmp_path), '[auth]\nstore = "postgres"\npostgres_dsn = "${PG_DSN}"\n')
    out = run(tmp_path, "db", "upgrade", PG_DSN=dsn)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"store: postgres {dsn.replace('s3cret-pw', '<redacted>')}",
                                       "tenancy: version 0 -> 1", "spend: version 0 -> 2"]
    again = run(tmp_path, "db", "upgrade", "--store", "postgres", "--postgres-dsn", dsn)
    assert again.stdout.endswith("tenancy: version 1 (up to date)\nspend: version 2 (up to date)\n")
    assert "s3cret-pw" not in out.stdout + out.stderr + again.stdout + again.stderr


def test_unreachable_postgres_fails_and_missing_dsn_is_invalid(tmp_path: Path) -> None:
    from tests.upstream import refused_port

    dsn = f"postgresql://mm:s3cret-pw@127.0.0.1:{refused_port()}/mm"
    down = run(tmp_path, "db", "upgrade", "--store", "postgres", "--postgres-dsn", dsn)
    assert down.returncode == 1
    assert "cannot upgrade postgres" in down.stderr and "s3cret-pw" not in down.stderr
    missing = run(tmp_path, "db", "upgrade", "--store", "postgres")
    assert missing.returncode == 2 and "postgres_dsn" in missing.stderr


def test_config_show_hides_the_dsn_password_and_the_master_key(tmp_path: Path) -> None:
    write(user_config(tmp_path), '[auth]\nstore = "postgres"\nmaster_key = "sk-master-hush"\n'
          'postgres_dsn = "postgresql://mm:s3cret-pw@db:5432/mm"\n'
          '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    out = run(tmp_path, "config", "show")
    assert out.returncode == 0, out.stderr
    assert 'postgres_dsn = "postgresql://mm:<redacted>@db:5432/mm"' in out.stdout
    assert 'master_key = "<redacted>"' in out.stdout
    assert "s3cret-pw" not in out.stdout + out.stderr and "hush" not in out.stdout + out.stderr


def test_a_password_in_the_dsn_query_is_hidden_too(tmp_path: Path,
                                                   postgres_server: PostgresServer) -> None:
    from tests.upstream import refused_port

    good = postgres_server.database() + "?password=s3cret-pw&sslmode=disable"
    out = run(tmp_path, "db", "upgrade", "--store", "postgres", "--postgres-dsn", good)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        f"store: postgres {good.replace('s3cret-pw', '<redacted>')}")
    down = (f"postgresql://mm@127.0.0.1:{refused_port()}/mm"
            "?sslpassword=key-phrase&password=s3cret-pw")
    failed = run(tmp_path, "db", "upgrade", "--store", "postgres", "--postgres-dsn", down)
    assert failed.returncode == 1 and "cannot upgrade postgres" in failed.stderr
    assert "?sslpassword=<redacted>&password=<redacted>" in failed.stderr
    write(user_config(tmp_path), f'[auth]\nstore = "postgres"\npostgres_dsn = "{down}"\n'
          '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    shown = run(tmp_path, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert "sslpassword=<redacted>&password=<redacted>" in shown.stdout
    for secret in ("s3cret-pw", "key-phrase"):
        assert secret not in out.stdout + out.stderr + failed.stdout + failed.stderr
        assert secret not in shown.stdout + shown.stderr


def test_store_commands_need_no_master_key_variable(tmp_path: Path) -> None:
    write(user_config(tmp_path), '[auth]\nmode = "keys"\nmaster_key = "${MODELMUX_MASTER_KEY}"\n'
          '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    for args in (("db", "upgrade"), ("teams", "create", "lab", "--store"),
                 ("keys", "create", "--name", "ci", "--team", "lab", "--store"),
                 ("keys", "list", "--store"), ("users", "list", "--store")):
        done = run(tmp_path, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "MODELMUX_MASTER_KEY" not in done.stderr
    serving = run(tmp_path, "config", "validate")  # the server does read it
    assert serving.returncode == 2 and "MODELMUX_MASTER_KEY is not set" in serving.stderr
