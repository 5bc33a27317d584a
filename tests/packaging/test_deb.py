"""The .deb: metadata, layout, a launcher that runs where it is unpacked, and maintainer scripts
that enable the service but never start it unconfigured."""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.helpers import (
    EXAMPLE_MASTER_KEY,
    PACKAGING,
    clean_env,
    get_json,
    project_version,
    require_tool,
    run,
    serving,
)
from tests.packaging.units import verify, with_exec_start_binary

SCRIPTS = PACKAGING / "debian"


def control_fields(deb: Path) -> dict[str, str]:
    text = run(["dpkg-deb", "-f", str(deb)]).stdout
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def test_control_file(deb: Path) -> None:
    fields = control_fields(deb)
    assert fields["Package"] == "modelmux"
    assert fields["Version"] == f"{project_version()}-1"
    assert fields["Architecture"] == run(["dpkg", "--print-architecture"]).stdout.strip()
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert "python3 (>= 3.11)" in depends
    # The bundled native modules are built for one Python minor version: pin it.
    major, minor = sys.version_info[:2]
    assert f"python3 (<< {major}.{minor + 1})" in depends
    assert "adduser" in depends
    info = run(["dpkg-deb", "-I", str(deb)]).stdout
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert re.search(rf"\b{script}\b", info), info


def test_conffiles_and_maintainer_scripts_are_the_sources(deb: Path, tmp_path: Path) -> None:
    control = tmp_path / "DEBIAN"
    run(["dpkg-deb", "-e", str(deb), str(control)])
    assert (control / "conffiles").read_text().split() == ["/etc/modelmux/config.toml.example"]
    for script in ("postinst", "prerm", "postrm"):
        assert (control / script).read_bytes() == (SCRIPTS / script).read_bytes()
        assert (control / script).stat().st_mode & stat.S_IXUSR


def test_contents(deb: Path) -> None:
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    paths = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"root/root"}
    for path in (
        "/usr/bin/modelmux",
        "/usr/lib/systemd/system/modelmux.service",
        "/usr/lib/systemd/user/modelmux.service",
        "/etc/modelmux/config.toml.example",
        "/usr/share/doc/modelmux/copyright",
        "/opt/modelmux/lib/modelmux/__init__.py",
        "/opt/modelmux/lib/h11/__init__.py",
        "/opt/modelmux/lib/msgspec/__init__.py",
        "/opt/modelmux/lib/uvloop/__init__.py",
        "/opt/modelmux/lib/google/auth/__init__.py",
    ):
        assert path in paths, path
    assert [p for p in paths if re.fullmatch(r"/opt/modelmux/lib/modelmux/_speedups/sse\..*\.so", p)]
    # No config.toml: an unconfigured install must stay unconfigured (and not be a conffile).
    assert "/etc/modelmux/config.toml" not in paths
    # pip's console scripts carry the build machine's interpreter path; the launcher replaces them.
    assert not [p for p in paths if p.startswith("/opt/modelmux/lib/bin/")]


def test_shipped_units_are_the_sources(deb_root: Path) -> None:
    assert (deb_root / "usr/lib/systemd/system/modelmux.service").read_bytes() == \
        (PACKAGING / "systemd/modelmux.service").read_bytes()
    assert (deb_root / "usr/lib/systemd/user/modelmux.service").read_bytes() == \
        (PACKAGING / "systemd/modelmux-user.service").read_bytes()


def launcher(deb_root: Path) -> list[str]:
    """The unpacked /usr/bin/modelmux, run as its shebang says (needs a matching system python3)."""
    script = deb_root / "usr/bin/modelmux"
    shebang = script.read_text().splitlines()[0].removeprefix("#!").split()
    interpreter = shebang[0]
    if not os.access(interpreter, os.X_OK):
        pytest.skip(f"the launcher's interpreter {interpreter} is not installed here")
    version = run([interpreter, "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"{interpreter} is Python {version}; the package was built for {sys.version_info[:2]}")
    return [str(script)]


def test_unpacked_launcher_runs_the_bundled_native_build(deb_root: Path) -> None:
    proc = run([*launcher(deb_root), "--version"], env=clean_env(MODELMUX_REQUIRE_NATIVE="1"), cwd="/")
    from modelmux._accel import NATIVE_MODULES

    expected = f"modelmux {project_version()} (native ({', '.join(NATIVE_MODULES)}))"
    assert proc.stdout.strip() == expected


def test_launcher_uses_only_the_bundled_tree(deb_root: Path, tmp_path: Path) -> None:
    """Without /opt/modelmux/lib next to it the launcher fails, even on an interpreter that has
    modelmux installed: nothing leaks in from site-packages, PYTHONPATH or the user site."""
    run([sys.executable, "-c", "import modelmux"])  # importable here, normally
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    script = root / "usr/bin/modelmux"
    shutil.copy2(deb_root / "usr/bin/modelmux", script)
    flags = script.read_text().splitlines()[0].split()[1:]
    assert flags == ["-IS"]
    proc = run([sys.executable, *flags, str(script), "--version"], check=False,
               env=clean_env(PYTHONPATH=str(PACKAGING.parent)), cwd=str(PACKAGING.parent))
    assert proc.returncode != 0
    assert "No module named 'modelmux'" in proc.stderr


def test_launcher_refuses_another_python_version(tmp_path: Path) -> None:
    script = tmp_path / "modelmux"
    template = (SCRIPTS / "launcher.py").read_text()
    assert template.count("@PYTHON_VERSION@") == 1
    script.write_text(template.replace("@PYTHON_VERSION@", "3.0"))
    proc = run([sys.executable, "-IS", str(script), "--version"], check=False, env=clean_env())
    assert proc.returncode == 1
    assert "built for Python 3.0" in proc.stderr


# Modules the code may import that the packages deliberately leave out (none so far). An import
# guarded by ``except ImportError`` still counts: in a .deb, Homebrew keg or container image a
# user cannot add the missing package, so the feature behind it would simply not work.
NOT_BUNDLED: set[str] = set()


def _imported_top_level_names(source: Path) -> set[str]:
    """Top-level modules a file imports anywhere, also inside functions and try blocks."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_package_bundles_everything_the_code_imports(deb_root: Path) -> None:
    """Every module the bundled modelmux imports, even lazily, is in the stdlib or the package.
    A dependency missing from pyproject.toml otherwise shows up only when its code path runs."""
    lib = deb_root / "opt/modelmux/lib"
    available = {p.name.split(".")[0] for p in lib.iterdir()} | set(sys.stdlib_module_names)
    missing: dict[str, list[str]] = {}
    for source in sorted((lib / "modelmux").rglob("*.py")):
        for name in _imported_top_level_names(source) - available - NOT_BUNDLED:
            missing.setdefault(name, []).append(str(source.relative_to(lib)))
    assert not missing, f"imported but not bundled (declare them in pyproject.toml): {missing}"


def test_unpacked_package_serves_its_example_config(deb_root: Path, tmp_path: Path) -> None:
    """The shipped example config is valid and the packaged server answers /health, then drains."""
    config = tmp_path / "config.toml"
    shutil.copy(deb_root / "etc/modelmux/config.toml.example", config)
    cmd = [*launcher(deb_root), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"]
    with serving(cmd, env=clean_env(HOME=str(tmp_path),
                                    MODELMUX_MASTER_KEY=EXAMPLE_MASTER_KEY)) as served:
        status, body = get_json(served.url, "/health")
        assert status == 200 and body == {"status": "ok"}, body  # anonymous: the status only
        status, body = get_json(served.url, "/health",
                                {"authorization": f"Bearer {EXAMPLE_MASTER_KEY}"})
        assert status == 200 and body["version"] == project_version()
        assert served.stop() == 0, "\n".join(served.lines)


def test_systemd_analyze_verify_packaged_unit(deb_root: Path, tmp_path: Path) -> None:
    """The packaged unit verifies with its ExecStart pointing at the packaged launcher."""
    require_tool("systemd-analyze")
    unit = with_exec_start_binary(deb_root / "usr/lib/systemd/system/modelmux.service",
                                  str(deb_root / "usr/bin/modelmux"), tmp_path)
    verify(unit, user=False, runtime_dir=tmp_path)


# --- maintainer scripts, run against a temporary $DPKG_ROOT with the system tools stubbed -----

STUBBED = ("getent", "adduser", "chown", "deb-systemd-helper", "deb-systemd-invoke", "systemctl")
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $*" in
    "getent passwd modelmux") exit "${STUB_USER_MISSING:-2}" ;;
    "deb-systemd-helper --quiet was-enabled "*) exit "${STUB_WAS_DISABLED:-0}" ;;
esac
exit 0
"""


class Maintainer:
    """Runs packaging/debian/{postinst,prerm,postrm} the way dpkg would, recording the calls."""

    def __init__(self, tmp_path: Path, *, systemd: bool = True, configured: bool = False) -> None:
        self.root = tmp_path / "root"
        (self.root / "etc/modelmux").mkdir(parents=True)
        (self.root / "etc/modelmux/config.toml.example").write_text("# example\n")
        if configured:
            (self.root / "etc/modelmux/config.toml").write_text("# configured\n")
        if systemd:
            (self.root / "run/systemd/system").mkdir(parents=True)
        self.bin = tmp_path / "stubs"
        self.bin.mkdir()
        for name in STUBBED:
            (self.bin / name).write_text(STUB)
            (self.bin / name).chmod(0o755)
        self.log = tmp_path / "calls.log"
        self.log.touch()

    def __call__(self, script: str, *args: str, **env: str) -> tuple[list[str], str]:
        full_env = clean_env(PATH=f"{self.bin}:/usr/bin:/bin", DPKG_ROOT=str(self.root),
                             STUB_LOG=str(self.log), **env)
        self.log.write_text("")
        proc = subprocess.run(["sh", "-e", str(SCRIPTS / script), *args], check=False, env=full_env,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return self.log.read_text().splitlines(), proc.stderr


def test_postinst_fresh_install_without_config_enables_but_does_not_start(tmp_path: Path) -> None:
    calls, stderr = Maintainer(tmp_path)("postinst", "configure", "")
    assert "adduser --system --group --quiet --home /var/lib/modelmux --no-create-home modelmux" in calls
    assert "deb-systemd-helper enable modelmux.service" in calls
    assert "systemctl --system daemon-reload" in calls
    assert not [c for c in calls if c.startswith("deb-systemd-invoke")], calls
    assert "config.toml.example" in stderr  # tells the administrator what to do next


def test_postinst_with_config_starts_the_service(tmp_path: Path) -> None:
    calls, _ = Maintainer(tmp_path, configured=True)("postinst", "configure", "")
    assert "deb-systemd-helper enable modelmux.service" in calls
    assert calls[-1] == "deb-systemd-invoke start modelmux.service"


def test_postinst_without_running_systemd_only_enables(tmp_path: Path) -> None:
    calls, _ = Maintainer(tmp_path, systemd=False, configured=True)("postinst", "configure", "")
    assert "deb-systemd-helper enable modelmux.service" in calls
    assert not [c for c in calls if c.startswith(("deb-systemd-invoke", "systemctl"))], calls


def test_postinst_upgrade_keeps_existing_user_and_admin_disable(tmp_path: Path) -> None:
    run_script = Maintainer(tmp_path, configured=True)
    calls, _ = run_script("postinst", "configure", "1.9.0-1", STUB_USER_MISSING="0", STUB_WAS_DISABLED="1")
    assert not [c for c in calls if c.startswith("adduser")], calls
    assert "deb-systemd-helper update-state modelmux.service" in calls
    assert "deb-systemd-helper enable modelmux.service" not in calls
    # deb-systemd-invoke itself refuses to start a disabled unit.
    assert calls[-1] == "deb-systemd-invoke start modelmux.service"


@pytest.mark.parametrize("action", ["remove", "upgrade"])
def test_prerm_stops_the_service(tmp_path: Path, action: str) -> None:
    calls, _ = Maintainer(tmp_path)("prerm", action, "2.0.0-1")
    assert calls == ["deb-systemd-invoke stop modelmux.service"]


def test_postrm_remove_and_purge(tmp_path: Path) -> None:
    run_script = Maintainer(tmp_path, configured=True)
    state = run_script.root / "var/lib/modelmux"
    state.mkdir(parents=True)
    calls, _ = run_script("postrm", "remove")
    assert "deb-systemd-helper mask modelmux.service" in calls
    assert state.is_dir()
    (run_script.root / "etc/modelmux/config.toml.example").unlink()  # dpkg removes the conffile
    calls, _ = run_script("postrm", "purge")
    assert "deb-systemd-helper purge modelmux.service" in calls
    assert "deb-systemd-helper unmask modelmux.service" in calls
    assert not state.exists()
    # The administrator's own config survives a purge.
    assert (run_script.root / "etc/modelmux/config.toml").is_file()


def test_build_script_refuses_a_pure_wheel(tmp_path: Path) -> None:
    """A wheel without the native modules must not be packaged."""
    require_tool("dpkg-deb")
    import zipfile

    wheel = tmp_path / f"modelmux-{project_version()}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("modelmux/__init__.py", "")
    proc = run(["bash", str(SCRIPTS / "build-deb.sh"), "--wheel", str(wheel), "--out", str(tmp_path)],
               check=False, env=clean_env(PYTHON=sys.executable))
    assert proc.returncode != 0
    assert "no native modules" in proc.stderr
    assert not list(tmp_path.glob("*.deb"))
