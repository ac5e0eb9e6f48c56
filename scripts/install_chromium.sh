#!/usr/bin/env bash
# Headless Chromium for tests/test_widgets_in_browser.py (the static widgets of chapters 3 and 7).
# Idempotent: does nothing when a Chromium is already on PATH. Debian/Ubuntu (apt) only;
# elsewhere it says what to install and fails.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: no apt-get here; install Chromium with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
