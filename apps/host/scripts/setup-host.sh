#!/usr/bin/env bash
# Part of `npm install` (the root postinstall): installs what Virga needs from
# Debian that npm cannot provide:
#   qemu-system-x86  the independent reference the probe guest is checked
#                    against, what `npm run bench` compares with, and the L1
#                    machine of the nested-KVM test harness
#   ncat             the tool the StratoVirt user guide drives QMP with; the
#                    QMP client tests use it as written there
#   chromium         the browser the portal's end-to-end tests drive
#                    (Playwright never downloads one here)
#   openssl          makes virgad's self-signed TLS certificate when it
#                    listens beyond loopback (apps/host/src/daemon/tls.ts)
#   clang            with libclang-rt-14-dev (libFuzzer and the sanitizer
#                    runtimes): native/fuzz's harnesses and the ASan+UBSan
#                    build of the native unit tests
#   postgresql       the database server the portal's scale-out tests start
#                    in a temporary directory (SQLite stays the portal's
#                    default; nothing runs it as a service)
# and then builds the stock-Linux test guest and the nested-KVM harness's L1
# machine from Debian packages (apps/host/test/images/build.sh; a no-op when
# they are current; VIRGA_SKIP_GUEST_IMAGES=1 skips it).
# Installs only what is missing, and only as root with apt-get; otherwise it
# says what to do and lets npm install go on. VIRGA_SKIP_HOST_SETUP=1 skips.
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

# command -> Debian package
declare -A wanted=(
  [qemu-system-x86_64]=qemu-system-x86
  [ncat]=ncat
  [chromium]=chromium
  [openssl]=openssl
  [clang++]=clang
)
# Packages a command needs that apt does not pull in without recommends:
# clang only recommends the runtimes that hold libFuzzer and the sanitizers.
declare -A companions=(
  [clang]=libclang-rt-14-dev
)
runtime_missing() {
  ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1
}
missing=()
for command in "${!wanted[@]}"; do
  if command -v "$command" >/dev/null 2>&1; then
    say "$command present"
  else
    missing+=("${wanted[$command]}")
    if [ -n "${companions[${wanted[$command]}]:-}" ]; then missing+=("${companions[${wanted[$command]}]}"); fi
  fi
done
if command -v clang++ >/dev/null 2>&1 && runtime_missing; then
  missing+=("${companions[clang]}")
fi
# Debian keeps PostgreSQL's server programs off PATH, under its version.
has_postgres() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }
if has_postgres; then
  say "postgres present"
else
  missing+=(postgresql)
fi
images=$(cd "$(dirname "${BASH_SOURCE[0]}")/../test/images" && pwd)/build.sh
build_images() {
  if [ "$(id -u)" != "0" ]; then
    say "not root: build the Linux test guest with: sudo $images"
    return 0
  fi
  "$images" --quiet || fail "building the Linux test guest images failed (see above)"
}

if [ "${#missing[@]}" -eq 0 ]; then
  build_images
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
  say "(tests that need them fail, naming what is missing; virga-vmm itself does not need them)"
  build_images
  exit 0
fi

say "installing Debian packages: ${missing[*]} (apt-get update, then apt-get install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || fail "apt-get update failed"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  fail "apt-get install ${missing[*]} failed"
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || fail "$command still missing after installing ${wanted[$command]}"
done
runtime_missing && fail "libFuzzer (libclang_rt.fuzzer) still missing after installing ${companions[clang]}"

has_postgres || fail "postgres still missing after installing postgresql"
say "installed ${missing[*]}"
build_images
