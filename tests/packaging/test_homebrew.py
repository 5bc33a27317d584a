"""The Homebrew formula: valid Ruby, a real ``brew services`` block, a test that serves for real,
resources for every runtime dependency, and a release script that pins the sdist's sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.packaging.conftest import Dists
from tests.packaging.helpers import PACKAGING, REPO, project_version, require_tool, run

FORMULA = PACKAGING / "homebrew" / "modelmux.rb"
# Provided by `depends_on "cryptography"` (Homebrew's prebuilt formula) with its own dependencies.
FROM_FORMULAE = {"cryptography", "cffi", "pycparser"}


def block(text: str, opener: str) -> str:
    """The body of the ``<opener> do ... end`` block at two-space indent."""
    match = re.search(rf"^  {re.escape(opener)} do\n(.*?)^  end\n", text, re.MULTILINE | re.DOTALL)
    assert match, opener
    return match.group(1)


def test_formula_is_valid_ruby() -> None:
    ruby = require_tool("ruby")
    assert run([ruby, "-wc", str(FORMULA)]).stdout.strip() == "Syntax OK"


def test_formula_installs_into_a_python_virtualenv() -> None:
    text = FORMULA.read_text()
    assert "include Language::Python::Virtualenv" in text
    assert 'depends_on "python@3.12"' in text
    assert "virtualenv_install_with_resources" in text
    assert 'ENV["MODELMUX_REQUIRE_NATIVE"] = "1"' in text
    assert 'license any_of: ["MIT", "Apache-2.0"]' in text


def test_formula_points_at_this_versions_sdist() -> None:
    text = FORMULA.read_text()
    version = project_version()
    url = re.search(r'^  url "([^"]+)"', text, re.MULTILINE)
    assert url and url.group(1).endswith(f"/v{version}/modelmux-{version}.tar.gz"), url
    assert re.search(r'^  sha256 "[0-9a-f]{64}"$', text, re.MULTILINE)


def test_service_block_for_brew_services() -> None:
    service = block(FORMULA.read_text(), "service")
    assert 'run [opt_bin/"modelmux", "serve"]' in service
    assert "keep_alive true" in service
    assert 'log_path var/"log/modelmux.log"' in service
    assert 'error_log_path var/"log/modelmux.log"' in service


def test_formula_test_serves_and_checks_health() -> None:
    """1.x's test passed only because the server failed to start; this one needs it to serve."""
    test = block(FORMULA.read_text(), "test")
    assert "free_port" in test
    assert 'spawn bin/"modelmux", "serve", "--config"' in test
    assert "/health" in test and '"status"' in test
    assert "/v1/chat/completions" in test
    assert 'Process.kill("TERM", pid)' in test
    assert "assert_equal 0, status.exitstatus" in test


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull in at run time, from the installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
            continue
        name = _normalise(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for spec in importlib.metadata.requires(name) or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                dep.marker = None
                todo.append(dep)
    return {key.split("[")[0] for key in seen}


def _project_dependencies() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def test_resources_cover_the_runtime_dependencies() -> None:
    text = FORMULA.read_text()
    resources = dict(re.findall(r'^  resource "([^"]+)" do\n    url "[^"]+"\n    sha256 "([^"]+)"\n  end',
                                text, re.MULTILINE))
    assert len(resources) == text.count("  resource \"")
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in resources.values()), resources
    assert 'depends_on "cryptography"' in text
    needed = _closure(_project_dependencies()) - {"modelmux"}
    missing = needed - FROM_FORMULAE - set(resources)
    assert not missing, f"runtime dependencies without a resource: {sorted(missing)}"
    # No stale resources: each one is needed, counting google-auth's requests transport, which
    # modelmux.auth.google imports.
    allowed = _closure([*_project_dependencies(), "google-auth[requests]"])
    assert set(resources) <= allowed, sorted(set(resources) - allowed)


def test_update_script_pins_the_built_sdist(dists: Dists, tmp_path: Path) -> None:
    require_tool("bash")
    formula = tmp_path / "modelmux.rb"
    shutil.copy(FORMULA, formula)
    run(["bash", str(PACKAGING / "homebrew" / "update-formula.sh"), str(dists.sdist)],
        env={"FORMULA": str(formula), "PATH": "/usr/bin:/bin"})
    text = formula.read_text()
    sha = hashlib.sha256(dists.sdist.read_bytes()).hexdigest()
    version = project_version()
    assert f'  url "https://github.com/yarenty/modelmux/releases/download/v{version}/{dists.sdist.name}"' in text
    assert f'  sha256 "{sha}"' in text
    # Only the top-level url/sha256 changed; the resources are untouched.
    before, after = FORMULA.read_text().splitlines(), text.splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] and len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after)) <= 2
