#!/usr/bin/env bash
# The browser test drives Debian's chromium (Playwright cannot download browsers here).
# Installs it when missing and we are allowed to (root); otherwise says why the test will skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; the browser test will be skipped" >&2
else
  echo "chromium is not installed and we are not root; the browser test will be skipped" >&2
fi
