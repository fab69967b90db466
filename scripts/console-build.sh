#!/usr/bin/env bash
# Fetches the console's front-end libraries, pinned by console/package-lock.json, from the npm
# registry and lays out the files the console serves under /assets/vendor/:
#
#   scripts/console-build.sh OUT_DIR
#
#   OUT_DIR/leaflet/{leaflet.js,leaflet.css,images/*.png}   Leaflet (the map)
#   OUT_DIR/h3-js/h3-js.umd.js                              h3-js (H3 cell outlines)
#   OUT_DIR/package-lock.json                               the lock these files came from
#
# console/build.rs runs it into the build's OUT_DIR when the files are missing or the lock file
# changed; run it by hand (e.g. `scripts/console-build.sh /opt/console-assets`) to prepare the
# files on a machine with npm for builds on one without: set CITYBRAIN_CONSOLE_ASSETS to that
# folder. Needs Node.js 20 and npm; `npm ci` installs exactly the lock's versions (integrity
# checked) with install scripts disabled. Nothing is written to the source tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: scripts/console-build.sh OUT_DIR}"
command -v npm >/dev/null || { echo "console-build: npm is not installed (Node.js 20 and npm are needed)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/citybrain-console.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$root/console/package.json" "$root/console/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
    --fetch-retries=1 --fetch-timeout=30000 >&2)
nm="$work/node_modules"
stage="$work/out"
mkdir -p "$stage/leaflet/images" "$stage/h3-js"
cp "$nm/leaflet/dist/leaflet.js" "$nm/leaflet/dist/leaflet.css" "$nm/leaflet/LICENSE" "$stage/leaflet/"
cp "$nm/leaflet/dist/images/"*.png "$stage/leaflet/images/"
cp "$nm/h3-js/dist/h3-js.umd.js" "$nm/h3-js/LICENSE" "$stage/h3-js/"
# The lock goes last: its presence tells build.rs the folder is complete for that lock.
rm -rf "${out:?}/leaflet" "${out:?}/h3-js" "$out/package-lock.json"
cp -r "$stage/leaflet" "$stage/h3-js" "$out/"
cp "$root/console/package-lock.json" "$out/package-lock.json"
echo "console-build: leaflet $(node -p "require('$nm/leaflet/package.json').version"), h3-js $(node -p "require('$nm/h3-js/package.json').version") in $out" >&2
