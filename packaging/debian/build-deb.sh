#!/usr/bin/env bash
# Build the modelmux .deb with dpkg-deb (no debhelper needed).
#
#   packaging/debian/build-deb.sh [--wheel FILE] [--out DIR] [--revision N] [--compress TYPE]
#
# Layout of the package:
#   /opt/modelmux/lib                     ModelMux and every Python dependency, installed with
#                                         `pip install --target` from the project's wheel
#   /usr/bin/modelmux                     launcher: runs the system python3 on that tree
#   /usr/lib/systemd/system/modelmux.service   system unit (user `modelmux`, sandboxed)
#   /usr/lib/systemd/user/modelmux.service     user unit
#   /etc/modelmux/config.toml.example     conffile; copy to config.toml to configure
#
# Why a --target tree plus a launcher and not a virtualenv: a venv records the interpreter that
# built it (pyvenv.cfg `home`, absolute shebangs, a symlink to that python), so it must be built
# at its final path with the target's own interpreter; the --target tree has no absolute paths in
# it and only needs the same Python minor version, which the control file pins.
#
# Build with the Python minor version of the target distribution's python3 (Debian 12: 3.11,
# Ubuntu 24.04: 3.12): PYTHON=/usr/bin/python3 by default when it has pip, else `python3`. The
# wheel is built with MODELMUX_REQUIRE_NATIVE=1 unless --wheel gives one (it must be native too).
# Dependencies come from PyPI (or wherever pip is pointed: PIP_INDEX_URL, PIP_FIND_LINKS).
# Prints the path of the .deb as its last line.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

wheel=""
out="$repo/dist"
revision=1
compress=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) wheel=$(realpath "$2"); shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --revision) revision="$2"; shift 2 ;;
        --compress) compress="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

die() { echo "build-deb.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

if [ -z "${PYTHON:-}" ]; then
    if /usr/bin/python3 -m pip --version >/dev/null 2>&1; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
py_major=${pyver%%.*}
py_minor=${pyver#*.}
glibc=$("$PYTHON" -c 'import platform; print(platform.libc_ver()[1])')
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$wheel" ]; then
    echo "== building the wheel (native build required)" >&2
    # From a clean copy of the sources: a stale build/ or in-place .so must not leak in.
    mkdir "$work/src"
    if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
            | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"
    else
        tar -C "$repo" --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude='*.so' \
            --exclude=__pycache__ --exclude=.git -cf - . | tar -xf - -C "$work/src"
    fi
    env -u MODELMUX_PURE_PYTHON MODELMUX_REQUIRE_NATIVE=1 \
        "$PYTHON" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$work/wheel" "$work/src" >&2
    wheel=$(ls "$work"/wheel/modelmux-*.whl)
fi
[ -f "$wheel" ] || die "no such wheel: $wheel"
"$PYTHON" - "$wheel" <<'CHECK' || die "$wheel has no native modules; build it with MODELMUX_REQUIRE_NATIVE=1"
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(re.fullmatch(r"modelmux/_speedups/[^/]+\.so", n) for n in names) else 1)
CHECK

version=$(basename "$wheel" | cut -d- -f2)
# PEP 440 pre-releases sort before the release in Debian only with a tilde: 2.1.0rc1 -> 2.1.0~rc1
debversion="$(printf '%s' "$version" | sed -E 's/\.?(a|b|rc|dev)([0-9]+)/~\1\2/')-$revision"

stage="$work/root"
lib="$stage/opt/modelmux/lib"
mkdir -p "$lib" "$stage/usr/bin" "$stage/usr/lib/systemd/system" "$stage/usr/lib/systemd/user" \
    "$stage/etc/modelmux" "$stage/usr/share/doc/modelmux" "$stage/DEBIAN"

echo "== installing modelmux $version and its dependencies for Python $pyver" >&2
env -u MODELMUX_PURE_PYTHON PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet \
    --disable-pip-version-check --no-compile --no-warn-script-location \
    --only-binary=:all: --target "$lib" "$wheel[otel,redis,jwt,postgres,tokenizers,tui]" >&2  # a .deb cannot add extras later
rm -rf "$lib/bin"  # console scripts with the build interpreter's shebang; the launcher replaces them
# Byte-compile as if already installed, so tracebacks name /opt/modelmux/lib paths.
"$PYTHON" -m compileall -q -j 0 -s "$stage" -p / "$lib" >/dev/null

sed -e "s/@PYTHON_VERSION@/$pyver/" "$here/launcher.py" > "$stage/usr/bin/modelmux"
chmod 0755 "$stage/usr/bin/modelmux"

install -m 0644 "$repo/packaging/systemd/modelmux.service" "$stage/usr/lib/systemd/system/modelmux.service"
install -m 0644 "$repo/packaging/systemd/modelmux-user.service" "$stage/usr/lib/systemd/user/modelmux.service"
install -m 0644 "$repo/packaging/config.toml.example" "$stage/etc/modelmux/config.toml.example"
install -m 0644 "$repo/README.md" "$stage/usr/share/doc/modelmux/README.md"
if [ -f "$repo/docs/packaging.md" ]; then
    install -m 0644 "$repo/docs/packaging.md" "$stage/usr/share/doc/modelmux/packaging.md"
fi
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: modelmux"
    echo "Source: https://github.com/yarenty/modelmux"
    echo
    echo "Files: *"
    echo "Copyright: The ModelMux authors"
    echo "License: MIT or Apache-2.0"
    echo
    echo "Files: opt/modelmux/lib/*"
    echo "Comment: Python packages bundled with ModelMux. Each one's license is in its"
    echo " opt/modelmux/lib/<name>-<version>.dist-info directory."
    echo
    echo "License: MIT"
    sed -e 's/^$/./' -e 's/^/ /' "$repo/LICENSE-MIT"
    echo
    echo "License: Apache-2.0"
    sed -e 's/^$/./' -e 's/^/ /' "$repo/LICENSE-APACHE"
} > "$stage/usr/share/doc/modelmux/copyright"

install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo "/etc/modelmux/config.toml.example" > "$stage/DEBIAN/conffiles"

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: modelmux
Version: $debversion
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-Jaro <yarenty@gmail.com>}
Installed-Size: $installed_size
Depends: python3 (>= $pyver), python3 (<< $py_major.$((py_minor + 1))), libc6 (>= $glibc), adduser, init-system-helpers (>= 1.54~)
Section: net
Priority: optional
Homepage: https://github.com/yarenty/modelmux
Description: OpenAI-compatible AI gateway in front of many model providers
 ModelMux serves one OpenAI-compatible API (/v1/chat/completions, streaming and
 tool calling included) in front of Anthropic, Claude on Vertex AI and
 OpenAI-compatible servers.
 .
 This package is self-contained: ModelMux and its Python dependencies live in
 /opt/modelmux and run on the system python3. The modelmux.service unit is
 enabled on install but only starts once /etc/modelmux/config.toml exists
 (start from /etc/modelmux/config.toml.example).
CONTROL

mkdir -p "$out"
deb="$(cd "$out" && pwd)/modelmux_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >&2
echo "$deb"
