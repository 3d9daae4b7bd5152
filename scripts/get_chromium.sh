#!/usr/bin/env bash
# Make Debian's `chromium` available for tests/test_browser.py (used by `make test`; Playwright's own browser
# download is not used):
#   1. nothing to do when `chromium` is on PATH;
#   2. else install Debian's package `chromium` with apt-get where root (or passwordless sudo) is available;
#   3. else stop with exit 1 and one line on stderr saying what to run.
set -uo pipefail

command -v chromium >/dev/null 2>&1 && exit 0
SUDO="none"
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if [ "$SUDO" = "none" ]; then
    echo "get_chromium: error: chromium is missing (tests/test_browser.py needs it); run: sudo apt-get install chromium" >&2
    exit 1
fi
echo "get_chromium: installing Debian's chromium (apt-get) ..."
install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
install || { $SUDO apt-get update -q >/dev/null; install; }
command -v chromium >/dev/null 2>&1 && exit 0
echo "get_chromium: error: apt-get could not install chromium; run: sudo apt-get update && sudo apt-get install chromium" >&2
exit 1
