#!/usr/bin/env bash
# Headless Chromium and its driver for the dashboard's page test (tests/integration/test_dashboard_page.py):
# Debian's chromium and chromium-driver, installed with apt where they are missing and apt can be used.
# Never fails: without a browser the page test is skipped and says why.
set -uo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: no apt-get here; the dashboard's page test will be skipped (install chromium and chromedriver)"
    exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "browser: not root and no passwordless sudo; the dashboard's page test will be skipped"
        exit 0
    fi
fi
echo "browser: installing chromium and chromium-driver with apt (once)"
if $SUDO apt-get update -qq >/dev/null && \
   DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; then
    echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
    echo "browser: apt could not install chromium; the dashboard's page test will be skipped"
fi
exit 0
