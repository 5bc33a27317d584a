"""Print pip constraints that pin every runtime dependency to its declared lower bound.

CI installs the project with these constraints in a venv of its own and runs the suite there,
so a lower bound in pyproject.toml is one that a test has passed on, not a guess.
"""

import re
import sys
import tomllib

EXTRAS = ("redis", "otel", "postgres", "jwt", "tokenizers")  # optional runtime features; test and fuzz tools are not pinned


def lower_bounds(pyproject: dict) -> list[str]:
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", spec)
        if match is None:
            raise SystemExit(f"no lower bound to pin in {requirement!r}")
        pin = f"{match[1]}=={match[2]}"
        pins.append(f"{pin}; {marker.strip()}" if marker.strip() else pin)
    return pins


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as file:
        print("\n".join(lower_bounds(tomllib.load(file))))
