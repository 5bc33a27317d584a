"""The Dockerfile, checked statically (no Docker engine here) plus its HEALTHCHECK run for real."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelmux.cli.main import build_parser
from tests.packaging.helpers import EXAMPLE_MASTER_KEY, REPO, clean_env, serving

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[list[tuple[str, str]], list[Stage]]:
    """(global instructions before the first FROM, stages); continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        logical.append(pending + raw)
        pending = ""
    assert not pending, "dangling line continuation"
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, line
            stages.append(Stage(base=match.group(1), name=match.group(2) or ""))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        else:
            preamble.append((keyword, args))
    return preamble, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[tuple[str, str]], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_multi_stage_build_requires_the_native_build(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    preamble, stages = dockerfile
    assert [s.name for s in stages] == ["builder", "runtime"]
    assert ("ARG", "PYTHON_VERSION=3.11") in preamble
    for stage in stages:
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim(-\w+)?", stage.base), stage.base
    builder, runtime = stages
    wheel_runs = [r for r in builder.all("RUN") if "pip wheel" in r]
    assert len(wheel_runs) == 1 and "MODELMUX_REQUIRE_NATIVE=1 pip wheel" in wheel_runs[0]
    assert any("gcc" in r for r in builder.all("RUN")), "the builder needs a C compiler"
    assert not any("gcc" in r for r in runtime.all("RUN")), "the runtime stays slim"
    installs = [r for r in runtime.all("RUN") if "pip install" in r]
    assert len(installs) == 1
    assert "from=builder" in installs[0] and "--no-index" in installs[0]
    assert "native (" in installs[0], "the image build checks that the native build is active"


def test_runtime_runs_unprivileged_with_a_healthcheck(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    users = runtime.all("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert runtime.all("EXPOSE") == ["3000"]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "curl" not in healthcheck and "wget" not in healthcheck  # not in slim images
    assert "urllib" in healthcheck
    env = " ".join(runtime.all("ENV"))
    assert "MODELMUX_HEALTHCHECK_URL=http://127.0.0.1:3000/health" in env


def test_cmd_serves_the_mounted_config_on_all_interfaces(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    (cmd,) = runtime.all("CMD")
    argv = json.loads(cmd)
    assert argv == ["modelmux", "serve", "--config", "/etc/modelmux/config.toml", "--host", "0.0.0.0"]
    ns = build_parser().parse_args(argv[1:])
    assert (ns.command, ns.config, ns.host) == ("serve", "/etc/modelmux/config.toml", "0.0.0.0")
    copies = runtime.all("COPY")
    assert "packaging/config.toml.example /etc/modelmux/config.toml" in copies


def test_the_state_directory_is_a_volume(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    """The SQLite tenancy file (in the state dir under the user's home) outlives the container."""
    from modelmux.config.paths import state_dir

    runtime = dockerfile[1][-1]
    (useradd,) = [r for r in runtime.all("RUN") if "useradd" in r]
    home = re.search(r"--home-dir\s+(\S+)", useradd)
    assert home is not None
    volumes = [path for spec in runtime.all("VOLUME") for path in json.loads(spec)]
    where = state_dir({"HOME": home.group(1)})
    assert any(where.is_relative_to(volume) for volume in volumes), (where, volumes)


def healthcheck_argv(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> list[str]:
    (healthcheck,) = dockerfile[1][-1].all("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    return [sys.executable, *argv[1:]]


def test_healthcheck_command_passes_on_a_ready_server(
        dockerfile: tuple[list[tuple[str, str]], list[Stage]], tmp_path: Path) -> None:
    argv = healthcheck_argv(dockerfile)
    config = tmp_path / "config.toml"
    config.write_text((REPO / "packaging/config.toml.example").read_text())
    cmd = [sys.executable, "-m", "modelmux", "serve", "--config", str(config), "--port", "0"]
    with serving(cmd, env=clean_env(HOME=str(tmp_path),
                                    MODELMUX_MASTER_KEY=EXAMPLE_MASTER_KEY)) as served:
        check = subprocess.run(argv, check=False, env=clean_env(MODELMUX_HEALTHCHECK_URL=served.url + "/health"),
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


def test_healthcheck_command_fails_without_a_server(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    argv = healthcheck_argv(dockerfile)
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = subprocess.run(argv, check=False, env=clean_env(MODELMUX_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/health"),
                           capture_output=True, text=True, timeout=30)
    assert check.returncode != 0


# --- .dockerignore: an allow-list that lets in exactly what the Dockerfile copies ------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            result = not negated
    return result


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.removeprefix("!").strip("/"))))
    return rules


def copied_sources(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> list[str]:
    sources = []
    for stage in dockerfile[1]:
        for args in stage.all("COPY"):
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            if "--from=" not in args:
                sources.extend(words[:-1])
    return sources


def test_build_context_has_what_the_dockerfile_copies(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    rules = dockerignore_rules()
    sources = copied_sources(dockerfile)
    assert sources, "no COPY line of the Dockerfile was parsed"
    for source in sources:
        path = REPO / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        wanted = [f.relative_to(REPO).as_posix() for f in files
                  if "__pycache__" not in f.parts and f.suffix not in (".so", ".pyc", ".c")]
        assert wanted, source
        for rel in wanted:
            assert not ignored(rel, rules), f"{rel} is copied by the Dockerfile but excluded by .dockerignore"


@pytest.mark.parametrize("path", [
    ".git/config", "build/lib/x.so", "tests/conftest.py", "modelmux/_speedups/sse.cpython-311-x86_64-linux-gnu.so",
    "modelmux/__pycache__/errors.cpython-311.pyc", "_speedups/sse.c", ".venv/bin/python", "dist/x.whl",
])
def test_build_context_leaves_out_the_rest(path: str) -> None:
    assert ignored(path, dockerignore_rules())
