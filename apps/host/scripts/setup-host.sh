#!/usr/bin/env bash
# Part of `npm install` (the root postinstall): installs what Virga needs from
# Debian that npm cannot provide. Today that is QEMU (qemu-system-x86), the
# independent reference the probe guest is checked against and that
# `npm run bench` compares with. Installs only when it is missing and we are
# root with apt-get; otherwise it says what to do and lets npm install go on.
# Set VIRGA_SKIP_HOST_SETUP=1 to skip.
set -euo pipefail

say() { echo "setup-host: $*"; }
fail() {
  echo "setup-host: error: $*" >&2
  exit 1
}

if [ "${VIRGA_SKIP_HOST_SETUP:-}" = "1" ]; then
  say "VIRGA_SKIP_HOST_SETUP=1, skipping"
  exit 0
fi

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  say "qemu-system-x86_64 present ($(qemu-system-x86_64 --version | head -n 1))"
  exit 0
fi

if [ "$(id -u)" != "0" ]; then
  say "qemu-system-x86_64 is missing and we are not root: run 'sudo apt-get install qemu-system-x86'"
  say "(needed by npm run bench and the QEMU reference runs; virga-vmm itself does not need it)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "qemu-system-x86_64 is missing and there is no apt-get: install QEMU for x86-64 by hand"
  exit 0
fi

say "installing Debian's qemu-system-x86 (apt-get update, then apt-get install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || fail "apt-get update failed"
apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null ||
  fail "apt-get install qemu-system-x86 failed"
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
  fail "qemu-system-x86 installed but qemu-system-x86_64 is not on PATH"
say "installed $(qemu-system-x86_64 --version | head -n 1)"
