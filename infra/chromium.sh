#!/usr/bin/env bash
# Headless Chromium for the report page's end-to-end test: Debian's `chromium` package.
# Installs it when missing (apt-get update once, then install) and prints the binary's path.
set -euo pipefail

find_chromium() {
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if path=$(find_chromium); then echo "$path"; exit 0; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "chromium is missing and this user cannot install packages (no root, no sudo)" >&2; exit 1
  fi
fi
{
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
} >&2
find_chromium || { echo "chromium was installed but is not on PATH" >&2; exit 1; }
