#!/usr/bin/env bash
# Headless Chromium and the fonts it needs for the browser tests: tests/test_widgets_in_browser.py
# (the static widgets of chapters 3 and 7) and tests/test_page_layout.py (every page at 1280 and
# 800 px, Chinese and Arabic drawn with real glyphs). Chinese needs a CJK font
# (fonts-wqy-microhei, 1.6 MB, the one the figures use); Arabic letters are in DejaVu Sans
# (fonts-dejavu-core), but the Quranic marks U+06D6-06DC, which chapter 4 shows as tokens on
# their own, are not: Amiri has them (fonts-hosny-amiri, 0.6 MB).
# And npm, for MathJax served by the book itself (scripts/vendor_mathjax.py).
# Idempotent: installs only what is missing. Debian/Ubuntu (apt) only; elsewhere it says what to
# install and fails.
set -euo pipefail

missing=()
have_chromium=""
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then
    have_chromium="$name"
    break
  fi
done
[ -n "$have_chromium" ] || missing+=(chromium)

# fc-list comes with fontconfig, which Chromium depends on; without it, install the fonts too.
has_font() { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list ":$1" family)" ]; }
has_font lang=zh || missing+=(fonts-wqy-microhei)
has_font lang=ar || missing+=(fonts-dejavu-core)
has_font charset=6d6-6dc || missing+=(fonts-hosny-amiri)
# npm fetches MathJax for the built book (scripts/vendor_mathjax.py), so pages typeset offline.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: no apt-get here; install with your package manager: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
for name in chromium chromium-browser google-chrome; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
echo "install_chromium.sh: Chromium is still not on PATH after installing ${missing[*]}" >&2
exit 1
