#!/usr/bin/env bash
# Point the Homebrew formula at a release sdist: rewrites the formula's top-level url and sha256.
#
#   packaging/homebrew/update-formula.sh dist/modelmux-X.Y.Z.tar.gz [URL]
#
# URL defaults to the GitHub release asset for that version. FORMULA=path overrides which
# formula file is edited (default: modelmux.rb next to this script). Resource blocks (indented
# deeper) are left alone.
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
sdist=$1
[ -f "$sdist" ] || { echo "update-formula.sh: no such file: $sdist" >&2; exit 1; }
name=$(basename "$sdist")
version=${name#modelmux-}
version=${version%.tar.gz}
[ "$version" != "$name" ] || { echo "update-formula.sh: not a modelmux sdist: $name" >&2; exit 1; }
url=${2:-https://github.com/yarenty/modelmux/releases/download/v$version/$name}
sha=$(sha256sum "$sdist" | cut -d' ' -f1)
formula=${FORMULA:-$(dirname "$0")/modelmux.rb}

sed -i -E \
    -e "s|^  url \"[^\"]*\"|  url \"$url\"|" \
    -e "s|^  sha256 \"[0-9a-f]{64}\"|  sha256 \"$sha\"|" \
    "$formula"
grep -q "^  sha256 \"$sha\"" "$formula" || { echo "update-formula.sh: no top-level sha256 line in $formula" >&2; exit 1; }
echo "$formula: $version $sha"
