#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the dashboard's browser tests (idempotent).
# `npx playwright install` cannot download browsers here; playwright-core drives this one.
set -euo pipefail

CHROMIUM="${OUTPOST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure-chromium: $CHROMIUM is missing; install it as root: apt-get install -y chromium" >&2
    exit 1
fi
echo "ensure-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends chromium; then
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends chromium
fi
test -x "$CHROMIUM" || { echo "ensure-chromium: still no $CHROMIUM" >&2; exit 1; }
