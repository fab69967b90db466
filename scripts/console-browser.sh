#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the console's browser tests (engine/tests/console.rs):
# Debian's `chromium` and `chromium-driver`, installed once with apt-get (root, as on CI), and a
# small Chinese font (fonts-wqy-microhei: the console's labels are Chinese; without a CJK font
# headless Chromium draws boxes in the screenshot of scripts/console-screenshot.sh).
#
#   scripts/console-browser.sh install   install them if missing (apt-get update first)
#   scripts/console-browser.sh status    print the paths and versions, exit 1 if missing
#
# The tests find the binaries on PATH (or CITYBRAIN_CHROMIUM / CITYBRAIN_CHROMEDRIVER); when they
# are missing and cannot be installed the browser tests are skipped loudly, never passed silently.
set -euo pipefail

have() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null &&
    [[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]]
}

status() {
  if have; then
    echo "console-browser: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"
    echo "console-browser: $(command -v chromedriver) ($(chromedriver --version 2>/dev/null | head -1))"
  else
    echo "console-browser: chromium, chromium-driver or fonts-wqy-microhei is not installed (scripts/console-browser.sh install)" >&2
    return 1
  fi
}

install() {
  if have; then
    status
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    echo "console-browser: installing needs root (apt-get install -y chromium chromium-driver)" >&2
    return 1
  fi
  echo "console-browser: installing Debian's chromium and chromium-driver (once; a few minutes)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-microhei >/dev/null
  status
}

case "${1:-}" in
  install) install ;;
  status) status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
