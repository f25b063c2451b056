#!/usr/bin/env bash
# Installs what the test suite needs beyond a Rust toolchain: headless Chromium for the admin web
# page test (Debian packages chromium, chromium-driver). Idempotent; needs root for apt-get.
# Without Chromium the browser test reports SKIPPED and the rest still runs.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: not root; run: sudo apt-get install -y chromium chromium-driver" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "install-test-deps: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
